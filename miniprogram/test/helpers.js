// What the page tests share: the running Relay, a school of one's own, a parent signed in, pages rendered.
const http = require('http');
const path = require('path');
const simulate = require('miniprogram-simulate');
const config = require('../config');
const session = require('../lib/session');

const ROOT = path.resolve(__dirname, '..');
const stack = JSON.parse(process.env.RELAY_MP_STACK);

config.baseUrl = stack.api;
config.pollSeconds = 0; // the tests ask for news themselves
config.templates = {received: 'tpl-received', assigned: 'tpl-assigned', answered: 'tpl-answered'};

// Plain HTTP from the test itself (staff actions, setup), beside the page's wx.request.
function fetchJson(method, url, {body, headers = {}} = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const target = new URL(url);
    const outgoing = http.request({
      host: target.hostname, port: target.port, path: target.pathname + target.search, method,
      headers: Object.assign(data ? {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data)} : {}, headers),
    }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = null; // not JSON: the tests look at the status
        }
        resolve({status: res.statusCode, json, headers: res.headers});
      });
    });
    outgoing.on('error', reject);
    if (data) outgoing.write(data);
    outgoing.end();
  });
}

const relay = (method, route, options = {}) => fetchJson(method, (options.base || stack.api) + route, {
  body: options.body,
  headers: Object.assign(options.token ? {Authorization: `Bearer ${options.token}`} : {}, options.headers || {}),
});

async function newSchool() {
  return (await fetchJson('POST', `${stack.control}/school`, {body: {}})).json;
}

async function bindingCode(school, guardianId = 'g1') {
  const made = await relay('POST', '/v1/admin/binding-codes', {token: school.tokens.principal, body: {guardian_id: guardianId}});
  if (made.status !== 201) throw new Error(`binding code: ${made.status} ${JSON.stringify(made.json)}`);
  return made.json.code;
}

let counter = 0;

// The next wx.login on this phone hands out a code that the local WeChat knows as `openid`.
async function nextLogin(openid) {
  counter += 1;
  const code = `code-${process.pid}-${Date.now()}-${counter}`;
  await fetchJson('POST', `${stack.control}/login-code`, {body: {code, openid}});
  bridge.loginCodes.push(code);
  return code;
}

// A parent bound and signed in on this phone without the pages (for tests about other pages).
async function signedInParent(school, guardianId = 'g1') {
  const openid = `o-${school.school_id}-${guardianId}-${counter}`;
  await nextLogin(openid);
  const first = await session.signIn();
  if (first.bound) throw new Error('a fresh openid was already bound');
  await session.bind(await bindingCode(school, guardianId), first.privacy_notice.version);
  return openid;
}

const loaded = {};

// Renders a page the way WeChat opens it: attached, onLoad(query), onShow.
async function open(page, query = {}) {
  if (!loaded[page]) {
    loaded[page] = simulate.load(path.join(ROOT, 'pages', page), {compiler: 'simulate', rootPath: ROOT});
  }
  const comp = simulate.render(loaded[page]);
  comp.attach(document.createElement('parent-wrapper'));
  if (comp.instance.onLoad) await comp.instance.onLoad(query);
  if (comp.instance.onShow) await comp.instance.onShow();
  return comp;
}

function text(comp, selector) {
  const found = comp.querySelector(selector);
  return found ? found.dom.textContent.trim() : null;
}

// Waits on what the page shows (its work is asynchronous), never for a fixed time.
async function until(check, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// j-component dispatches an event in a microtask: one turn of the event loop runs the handler's
// synchronous part (what it checks and shows before its first network call).
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

async function tap(comp, selector) {
  const found = comp.querySelector(selector);
  if (!found) throw new Error(`nothing to tap at ${selector}`);
  found.dispatchEvent('tap');
  await turn();
}

async function type(comp, selector, value) {
  const found = comp.querySelector(selector);
  if (!found) throw new Error(`nothing to type into at ${selector}`);
  found.dispatchEvent('input', {detail: {value}});
  await turn();
}

function requestId(url) {
  const found = /[?&]id=([^&]+)/.exec(url || '');
  return found ? found[1] : '';
}

function resetPhone() {
  bridge.storage.clear();
  bridge.loginCodes.length = 0;
  bridge.sent.length = 0;
  bridge.navigations.length = 0;
  bridge.toasts.length = 0;
  bridge.subscribeAsks.length = 0;
  bridge.phoneCalls.length = 0;
  bridge.offline = false;
  bridge.loseNextAnswers = 0;
  bridge.delayMs = 0;
  bridge.modalConfirm = true;
  config.baseUrl = stack.api;
}

module.exports = {stack, config, relay, newSchool, bindingCode, nextLogin, signedInParent, open, text, until, tap,
  type, requestId, resetPhone};

module.exports.bridge = () => global.bridge;

// A request sent straight to Relay as this phone's parent (setup for tests about the request page).
module.exports.submitDirect = async (school, text, extra = {}) => {
  const answer = await relay('POST', '/v1/requests', {
    token: require('../lib/session').accessToken(),
    headers: {'Idempotency-Key': `direct-${Date.now()}-${Math.random()}`},
    body: Object.assign({student_id: 's1', text}, extra),
  });
  if (answer.status !== 201) throw new Error(`submit: ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json;
};
