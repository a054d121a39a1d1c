// Unsent words survive a failed send, a closed page and a restart; each keeps its Idempotency-Key until
// Relay has it, so a retry can never make a second request.
const api = require('./api');

const PREFIX = 'relay.draft.';

function load(name) {
  return wx.getStorageSync(PREFIX + name) || null;
}

function save(name, draft) {
  wx.setStorageSync(PREFIX + name, draft);
  return draft;
}

// The content changed: what is sent now is another message, with a key of its own.
function edit(name, draft, changes) {
  return save(name, Object.assign({}, draft, changes, {key: ''}));
}

// Before each send: the draft's key, made on the first attempt and kept for every retry.
function keyed(name, draft) {
  return draft.key ? draft : save(name, Object.assign({}, draft, {key: api.newKey()}));
}

function clear(name) {
  wx.removeStorageSync(PREFIX + name);
}

module.exports = {load, save, edit, keyed, clear};
