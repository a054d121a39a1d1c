// The wx a page sees in the tests: miniprogram-simulate's, with wx.request carried over real HTTP to the
// Relay global-setup started, and the rest (login, storage, navigation, dialogs) recorded for the tests.
const http = require('http');
require('miniprogram-simulate');

// A port nobody listens on: "offline" is a real refused connection, not a pretend failure.
const CLOSED_PORT = 9; // discard: served on no test machine (pages.test.js checks that it refuses)

const bridge = {
  storage: new Map(),
  loginCodes: [],
  sent: [], // every wx.request: {method, url, headers, data}
  navigations: [], // {how, url}
  toasts: [],
  subscribeAsks: [],
  phoneCalls: [],
  modalConfirm: true,
  offline: false,
  loseNextAnswers: 0, // the request reaches Relay, the answer never reaches the phone
  delayMs: 0,
  networkListeners: [],
  setOffline(offline) {
    this.offline = offline;
    this.networkListeners.forEach((listener) => listener({isConnected: !offline, networkType: offline ? 'none' : 'wifi'}));
  },
  last(how) {
    const found = this.navigations.filter((n) => !how || n.how === how);
    return found.length ? found[found.length - 1].url : '';
  },
};
global.bridge = bridge;

function later(callbacks, ok, result) {
  setTimeout(() => {
    if (ok && callbacks.success) callbacks.success(result);
    if (!ok && callbacks.fail) callbacks.fail(result);
    if (callbacks.complete) callbacks.complete(result);
  }, 0);
}

function request(options) {
  const url = new URL(options.url);
  const headers = Object.assign({}, options.header || {});
  let body = options.data;
  if (body !== undefined && typeof body !== 'string') body = JSON.stringify(body);
  bridge.sent.push({method: options.method || 'GET', url: options.url, headers, data: body});
  const lose = bridge.loseNextAnswers > 0;
  if (lose) bridge.loseNextAnswers -= 1;
  const go = () => {
    const outgoing = http.request({
      host: url.hostname,
      port: bridge.offline ? CLOSED_PORT : url.port,
      path: url.pathname + url.search,
      method: options.method || 'GET',
      headers: Object.assign(body ? {'Content-Length': Buffer.byteLength(body)} : {}, headers),
      timeout: options.timeout || 60000,
    }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        if (lose) {
          later(options, false, {errMsg: 'request:fail socket hang up'});
          return;
        }
        const text = Buffer.concat(chunks).toString('utf8');
        let data = text;
        try {
          data = JSON.parse(text);
        } catch {
          // wx.request hands over the text when it is not JSON
        }
        later(options, true, {statusCode: res.statusCode, data, header: res.headers, errMsg: 'request:ok'});
      });
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error('timeout')));
    outgoing.on('error', (error) => later(options, false, {
      errMsg: `request:fail ${error.message === 'timeout' ? 'timeout' : error.code || error.message}`,
    }));
    if (body) outgoing.write(body);
    outgoing.end();
  };
  if (bridge.delayMs) setTimeout(go, bridge.delayMs);
  else go();
  return {abort() {}};
}

const clone = (value) => (value === undefined ? value : JSON.parse(JSON.stringify(value)));

Object.assign(global.wx, {
  request,
  login(options) {
    const code = bridge.loginCodes.shift();
    later(options, Boolean(code), code ? {code, errMsg: 'login:ok'} : {errMsg: 'login:fail no code'});
  },
  getStorageSync: (key) => (bridge.storage.has(key) ? clone(bridge.storage.get(key)) : ''),
  setStorageSync: (key, value) => bridge.storage.set(key, clone(value)),
  removeStorageSync: (key) => bridge.storage.delete(key),
  navigateTo(options) {
    bridge.navigations.push({how: 'navigateTo', url: options.url});
    later(options, true, {});
  },
  redirectTo(options) {
    bridge.navigations.push({how: 'redirectTo', url: options.url});
    later(options, true, {});
  },
  reLaunch(options) {
    bridge.navigations.push({how: 'reLaunch', url: options.url});
    later(options, true, {});
  },
  showToast(options) {
    bridge.toasts.push(options.title);
    later(options, true, {});
  },
  showModal(options) {
    later(options, true, {confirm: bridge.modalConfirm, cancel: !bridge.modalConfirm});
  },
  requestSubscribeMessage(options) {
    bridge.subscribeAsks.push(options.tmplIds);
    later(options, true, Object.fromEntries(options.tmplIds.map((id) => [id, 'accept'])));
  },
  makePhoneCall(options) {
    bridge.phoneCalls.push(options.phoneNumber);
    later(options, true, {});
  },
  getNetworkType(options) {
    later(options, true, {networkType: bridge.offline ? 'none' : 'wifi'});
  },
  onNetworkStatusChange(listener) {
    bridge.networkListeners.push(listener);
  },
  setNavigationBarTitle() {},
  stopPullDownRefresh() {},
});
