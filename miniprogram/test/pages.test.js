// Every page renders from Relay's answers, Chinese first and in English on the switch; settings sign out
// and delete the parent's data; the one config file and the app's page list agree with what is shipped.
const fs = require('fs');
const path = require('path');
const h = require('./helpers');
const session = require('../lib/session');

const ROOT = path.resolve(__dirname, '..');
let school;

beforeAll(async () => {
  school = await h.newSchool();
});

beforeEach(() => h.resetPhone());

test('home lists the children and the requests newest first, with status in words', async () => {
  await h.signedInParent(school);
  const first = await h.submitDirect(school, '请问下周的春游要交多少钱？');
  const second = await h.submitDirect(school, '孩子今天咳嗽，体育课能否请假？', {student_id: 's2'});
  await h.relay('POST', `/v1/requests/${first.id}/claim`, {token: school.tokens.aa});
  const home = await h.open('home/home');
  const rows = home.querySelectorAll('.request').map((row) => row.dom.textContent);
  expect(rows).toHaveLength(2);
  expect(rows[0]).toContain('张小红');
  expect(rows[0]).toContain('孩子今天咳嗽');
  expect(rows[1]).toContain('王老师（教务）已接收，正在处理');
  expect(second.id).not.toBe(first.id);
  await h.tap(home, '.request');
  expect(h.bridge().last('navigateTo')).toBe(`/pages/request/detail?id=${second.id}`);
});

test('the English switch turns every page to English and is remembered', async () => {
  await h.signedInParent(school);
  const made = await h.submitDirect(school, '孩子摔倒了膝盖流血');
  const home = await h.open('home/home');
  expect(h.text(home, '#lang')).toBe('English');
  await h.tap(home, '#lang');
  await h.until(() => h.text(home, '#write') === 'Write to school', 'English on home');
  const page = await h.open('new/new');
  expect(h.text(page, '#send')).toBe('Send');
  expect(h.text(page, '#hint-2')).toBe('Unwell');
  const detail = await h.open('request/detail', {id: made.id});
  expect(h.text(detail, '#call120')).toBe('In danger, call 120');
  expect(h.text(detail, '#urgency')).toBe('Urgent');
  const me = await h.open('me/me');
  await h.tap(me, '#lang');
  expect(h.text(me, '#sign-out')).toBe('退出登录');
});

test('the binding page names the notice version and refuses an unknown code in Chinese', async () => {
  await h.nextLogin(`o-${school.school_id}-newcomer`);
  const bind = await h.open('bind/bind');
  await h.type(bind, '#code', 'NOSUCHCODE');
  await h.tap(bind, '#consent-privacy');
  await h.tap(bind, '#consent-health');
  await h.tap(bind, '#bind');
  await h.until(() => h.text(bind, '#error'), 'the refusal');
  expect(h.text(bind, '#error')).toBe('绑定码无效、已使用或已过期');
  await h.tap(bind, '#open-notice');
  expect(h.bridge().last('navigateTo')).toContain(encodeURIComponent(`${h.stack.api}/privacy`));
  const privacy = await h.open('privacy/privacy', {url: encodeURIComponent('https://evil.example/privacy')});
  expect(privacy.instance.data.url).toBe(`${h.stack.api}/privacy`);
});

test('sign-out forgets the tokens, Relay revokes the refresh token, and it waits for a tap before signing in again', async () => {
  const openid = await h.signedInParent(school);
  const refreshToken = h.bridge().storage.get(session.KEYS.refresh);
  const me = await h.open('me/me');
  await h.tap(me, '#sign-out');
  await h.until(() => h.bridge().sent.some((s) => s.url.endsWith('/v1/auth/sign-out')), 'the sign-out call');
  const spent = await h.relay('POST', '/v1/auth/refresh', {body: {refresh_token: refreshToken}});
  expect(spent.status).toBe(401);
  h.bridge().sent.length = 0;
  expect(session.accessToken()).toBe('');
  expect(h.bridge().storage.has(session.KEYS.refresh)).toBe(false);
  const home = await h.open('home/home');
  expect(h.text(home, '#signed-out')).toContain('已退出登录');
  expect(h.bridge().sent.some((s) => s.url.endsWith('/v1/auth/wechat'))).toBe(false);
  await h.nextLogin(openid);
  await h.tap(home, '#sign-in');
  await h.until(() => h.text(home, '#school'), 'home after signing in again');
});

test('delete my data: after a confirmation Relay forgets the requests and the binding', async () => {
  const openid = await h.signedInParent(school, 'g2');
  await h.submitDirect(school, '谢谢老师这学期的照顾', {student_id: 's3'});
  const token = session.accessToken();
  h.bridge().modalConfirm = false;
  const me = await h.open('me/me');
  await h.tap(me, '#delete');
  expect((await h.relay('GET', '/v1/requests', {token})).json.requests).toHaveLength(1); // cancelled: kept
  h.bridge().modalConfirm = true;
  await h.tap(me, '#delete');
  await h.until(() => h.bridge().toasts.includes('已删除您的数据'), 'the deletion');
  expect((await h.relay('GET', '/v1/requests', {token})).json.requests).toHaveLength(0);
  await h.nextLogin(openid);
  expect((await session.signIn()).bound).toBe(false); // the binding went too
});

test('one config file: project.config.json carries its app id, and app.json lists every page', () => {
  const config = require('../config');
  const project = JSON.parse(fs.readFileSync(path.join(ROOT, 'project.config.json'), 'utf8'));
  expect(project.appid).toBe(require('../scripts/configure').appIdOf(config));
  const app = JSON.parse(fs.readFileSync(path.join(ROOT, 'app.json'), 'utf8'));
  const shipped = fs.readdirSync(path.join(ROOT, 'pages')).flatMap((dir) => fs.readdirSync(path.join(ROOT, 'pages', dir))
    .filter((file) => file.endsWith('.wxml')).map((file) => `pages/${dir}/${file.replace(/\.wxml$/, '')}`));
  expect(app.pages.slice().sort()).toEqual(shipped.sort());
});

test('the offline port the bridge uses is closed, so "offline" is a real refused connection', async () => {
  h.bridge().setOffline(true);
  await expect(require('../lib/http').send('GET', '/healthz')).rejects.toMatchObject({kind: 'network'});
});
