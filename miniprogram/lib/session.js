// Who the parent is on this phone: wx.login -> Relay's tokens, binding with the school's code, refresh, sign-out.
const http = require('./http');

const KEYS = {
  access: 'relay.access_token',
  refresh: 'relay.refresh_token',
  binding: 'relay.binding', // {binding_token, privacy_notice} while a WeChat user is not bound yet
};

function accessToken() {
  return wx.getStorageSync(KEYS.access) || '';
}

function signedIn() {
  return Boolean(accessToken());
}

function keepTokens(answer) {
  wx.setStorageSync(KEYS.access, answer.access_token);
  wx.setStorageSync(KEYS.refresh, answer.refresh_token);
  wx.removeStorageSync(KEYS.binding);
}

function wxLogin() {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (res) => (res.code ? resolve(res.code) : reject(new http.Failure('network'))),
      fail: () => reject(new http.Failure('network')),
    });
  });
}

// Signs in with WeChat: {bound: true} with tokens kept, or {bound: false} with the binding token kept
// (the bind page needs it, and the privacy notice to show).
async function signIn() {
  const code = await wxLogin();
  const answer = (await http.send('POST', '/v1/auth/wechat', {data: {code}})).data;
  if (answer.bound) {
    keepTokens(answer);
    return {bound: true};
  }
  wx.removeStorageSync(KEYS.access);
  wx.removeStorageSync(KEYS.refresh);
  wx.setStorageSync(KEYS.binding, {binding_token: answer.binding_token, privacy_notice: answer.privacy_notice});
  return {bound: false, privacy_notice: answer.privacy_notice};
}

function pendingBinding() {
  return wx.getStorageSync(KEYS.binding) || null;
}

async function bind(bindingCode, noticeVersion) {
  const pending = pendingBinding();
  if (!pending) throw new http.Failure('http', {status: 401, code: 'invalid_binding_token'});
  const answer = (await http.send('POST', '/v1/auth/bind', {data: {
    binding_token: pending.binding_token,
    binding_code: bindingCode,
    consent: {health_info: true, notice_version: noticeVersion},
  }})).data;
  keepTokens(answer);
}

// One refresh at a time: refresh tokens rotate, and Relay treats a spent one presented again as theft.
let refreshing = null;

function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const token = wx.getStorageSync(KEYS.refresh);
      if (!token) return false;
      try {
        keepTokens((await http.send('POST', '/v1/auth/refresh', {data: {refresh_token: token}})).data);
        return true;
      } catch (error) {
        if (error.kind === 'http' && error.status === 401) {
          wx.removeStorageSync(KEYS.refresh);
          return false;
        }
        throw error;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

// Signing out forgets the tokens on this phone and asks Relay to revoke the refresh token; the app then waits for a tap before it signs in again
// (wx.login would otherwise sign the same WeChat user straight back in).
const SIGNED_OUT = 'relay.signed_out';

async function signOut() {
  const token = wx.getStorageSync(KEYS.refresh);
  Object.values(KEYS).forEach((key) => wx.removeStorageSync(key));
  wx.setStorageSync(SIGNED_OUT, true);
  if (!token) return;
  // Relay revokes this phone's refresh token; offline, the phone has forgotten it anyway.
  try {
    await http.send('POST', '/v1/auth/sign-out', {data: {refresh_token: token}});
  } catch {
    // Nothing to tell the parent: they are signed out on this phone either way.
  }
}

function isSignedOut() {
  return Boolean(wx.getStorageSync(SIGNED_OUT));
}

function signInAllowed() {
  wx.removeStorageSync(SIGNED_OUT);
}

module.exports = {KEYS, accessToken, signedIn, signIn, pendingBinding, bind, refresh, signOut, isSignedOut,
  signInAllowed};
