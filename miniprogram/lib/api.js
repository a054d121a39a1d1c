// Relay's parent API: every call carries the access token; a 401 refreshes, then signs in again, once.
const http = require('./http');
const session = require('./session');
const i18n = require('./i18n');

class NotBound extends Error {
  constructor() {
    super('not_bound');
    this.kind = 'not_bound';
  }
}

async function call(method, path, options = {}) {
  const attempt = () => http.send(method, path, Object.assign({}, options, {
    headers: Object.assign({Authorization: `Bearer ${session.accessToken()}`}, options.headers || {}),
  }));
  try {
    return (await attempt()).data;
  } catch (error) {
    if (!(error.kind === 'http' && error.status === 401)) throw error;
  }
  if (!(await session.refresh())) {
    const signed = await session.signIn();
    if (!signed.bound) throw new NotBound();
  }
  return (await attempt()).data;
}

// One random key per message; a retry of the same message sends the same key, so Relay keeps one copy.
function newKey() {
  const random = () => Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return `mp-${Date.now().toString(16)}-${random()}${random()}`;
}

const api = {
  me: () => call('GET', '/v1/me'),
  myRequests: () => call('GET', '/v1/requests').then((answer) => answer.requests),
  request: (id) => call('GET', `/v1/requests/${encodeURIComponent(id)}`),
  submit: (body, key, onSlow) => call('POST', '/v1/requests', {data: body, headers: {'Idempotency-Key': key}, onSlow}),
  followUp: (id, text, key, onSlow) => call('POST', `/v1/requests/${encodeURIComponent(id)}/follow-up`,
    {data: {text}, headers: {'Idempotency-Key': key}, onSlow}),
  markUrgent: (id) => call('POST', `/v1/requests/${encodeURIComponent(id)}/urgent`),
  deleteMyData: () => call('DELETE', '/v1/me/data'),
};

// Relay's messages read "中文 (English)": the parent gets the half in their language.
function serverWords(message, lang) {
  const found = /^(.*?)\s*\((.*)\)\s*$/s.exec(message || '');
  if (!found) return message || '';
  return lang === 'en' ? found[2] : found[1];
}

// The sentence a parent reads for a failure: always a clear one, never a status code alone.
function describe(error) {
  const w = i18n.words();
  const e = w.errors;
  if (error.kind === 'network') return e.network;
  if (error.kind === 'timeout') return e.timeout;
  if (error.kind === 'not_bound') return e.signIn;
  if (error.kind !== 'http') return e.other;
  const said = serverWords(error.serverMessage, w.lang);
  switch (error.status) {
    case 401: return e.signIn;
    case 404: return error.code === 'not_found' ? e.notFound : (said || e.notFound);
    case 409:
    case 422: return said || e.invalid;
    case 429: return error.retryAfter ? i18n.fill(e.tooManyWait, {seconds: error.retryAfter}) : e.tooMany;
    default: return error.status >= 500 ? e.busy : (said || e.other);
  }
}

module.exports = Object.assign(api, {call, newKey, describe, serverWords, NotBound});
