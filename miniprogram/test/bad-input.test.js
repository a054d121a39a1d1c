// What goes wrong on a phone: no network, an answer lost on the way back, slow links, an expired sign-in,
// an unknown request, refused content, too many messages. Each gets a clear Chinese sentence, and nothing
// the parent wrote is lost: a retry resends it with the same Idempotency-Key.
const h = require('./helpers');
const session = require('../lib/session');

let school;

beforeAll(async () => {
  school = await h.newSchool();
});

beforeEach(() => h.resetPhone());

async function writing(text, guardianId = 'g1') {
  await h.signedInParent(school, guardianId);
  const page = await h.open('new/new');
  await h.until(() => page.instance.data.children.length, 'the children');
  await h.type(page, '#text', text);
  return page;
}

const posts = () => h.bridge().sent.filter((s) => s.method === 'POST' && s.url.endsWith('/v1/requests'));
const mine = async () => (await h.relay('GET', '/v1/requests', {token: session.accessToken()})).json.requests;

test('offline: the message stays with a retry that reuses its key, and Relay keeps one copy', async () => {
  const page = await writing('明天孩子请假一天，去医院复查');
  h.bridge().setOffline(true);
  expect(h.text(page, '#offline')).toBe('当前没有网络，内容已保留，联网后点“重试”');
  await h.tap(page, '#send');
  await h.until(() => h.text(page, '#error'), 'the network error');
  expect(h.text(page, '#error')).toBe('网络连接失败，内容已保留，请检查网络后点“重试”');
  expect(h.text(page, '#send')).toBe('重试');
  expect(page.instance.data.draft.text).toBe('明天孩子请假一天，去医院复查');

  h.bridge().setOffline(false);
  await h.tap(page, '#send');
  await h.until(() => h.bridge().last('redirectTo').startsWith('/pages/request/detail'), 'the request page');
  const keys = posts().map((s) => s.headers['Idempotency-Key']);
  expect(keys).toHaveLength(2);
  expect(keys[1]).toBe(keys[0]);
  expect(h.bridge().subscribeAsks).toHaveLength(1); // asked once per message, not on every retry
  expect((await mine()).filter((r) => r.text === '明天孩子请假一天，去医院复查')).toHaveLength(1);
});

test('the answer lost on the way back: the retry gets the same request, never a second one', async () => {
  const page = await writing('下午三点奶奶来接孩子', 'g2');
  h.bridge().loseNextAnswers = 1;
  await h.tap(page, '#send');
  await h.until(() => h.text(page, '#error'), 'the lost answer');
  expect(h.text(page, '#error')).toBe('网络连接失败，内容已保留，请检查网络后点“重试”');
  expect((await mine())).toHaveLength(1); // Relay has it already

  await h.tap(page, '#send');
  await h.until(() => h.bridge().last('redirectTo').startsWith('/pages/request/detail'), 'the request page');
  expect(new Set(posts().map((s) => s.headers['Idempotency-Key'])).size).toBe(1);
  const stored = await mine();
  expect(stored).toHaveLength(1);
  expect(h.requestId(h.bridge().last('redirectTo'))).toBe(stored[0].id);
  expect(h.bridge().storage.has('relay.draft.new')).toBe(false); // sent: the draft is gone
});

test('editing after a failure makes a new message with a key of its own', async () => {
  const page = await writing('周五家长会几点开始？');
  h.bridge().setOffline(true);
  await h.tap(page, '#send');
  await h.until(() => h.text(page, '#error'), 'the network error');
  h.bridge().setOffline(false);
  await h.type(page, '#text', '周五家长会几点开始？在哪个教室？');
  await h.tap(page, '#send');
  await h.until(() => h.bridge().last('redirectTo'), 'the request page');
  const keys = posts().map((s) => s.headers['Idempotency-Key']);
  expect(keys[1]).not.toBe(keys[0]);
});

test('a slow network shows that it is still sending, then arrives', async () => {
  const page = await writing('孩子的校服尺码需要换大一号');
  h.config.slowAfterMs = 20;
  h.bridge().delayMs = 300;
  try {
    await h.tap(page, '#send');
    await h.until(() => h.text(page, '#slow'), 'the slow state');
    expect(h.text(page, '#slow')).toBe('网络较慢，仍在发送，请稍候…');
    expect(h.text(page, '#send')).toBe('正在发送…');
    await h.until(() => h.bridge().last('redirectTo'), 'the request page');
  } finally {
    h.config.slowAfterMs = 3000;
  }
});

test('401: the page refreshes the sign-in, then signs in again with WeChat, and the message still goes', async () => {
  const openid = await h.signedInParent(school);
  const page = await h.open('new/new');
  await h.until(() => page.instance.data.children.length, 'the children');
  await h.type(page, '#text', '请问学校的午餐费怎么交？');

  h.bridge().storage.set(session.KEYS.access, 'expired-token');
  await h.tap(page, '#send');
  await h.until(() => h.bridge().last('redirectTo'), 'sent after a refresh');
  expect(h.bridge().sent.filter((s) => s.url.endsWith('/v1/auth/refresh'))).toHaveLength(1);

  // Both tokens refused: wx.login again; the WeChat user is still bound, so no binding page.
  h.bridge().navigations.length = 0;
  h.bridge().storage.set(session.KEYS.access, 'expired-token');
  h.bridge().storage.set(session.KEYS.refresh, 'spent-refresh-token');
  await h.nextLogin(openid);
  const again = await h.open('new/new');
  await h.until(() => again.instance.data.children.length, 'the children after signing in again');
  expect(h.bridge().loginCodes).toHaveLength(0);
  expect(h.bridge().sent.filter((s) => s.url.endsWith('/v1/auth/wechat')).length).toBeGreaterThan(0);
});

test('401 for a WeChat user no longer bound: the draft is kept and the binding page opens', async () => {
  const page = await writing('下周一孩子要去看牙，请假半天');
  h.bridge().storage.set(session.KEYS.access, 'expired-token');
  h.bridge().storage.set(session.KEYS.refresh, 'spent-refresh-token');
  await h.nextLogin(`o-${school.school_id}-stranger`);
  await h.tap(page, '#send');
  await h.until(() => h.bridge().last('redirectTo') === '/pages/bind/bind', 'the binding page');
  expect(h.bridge().storage.get('relay.draft.new').text).toBe('下周一孩子要去看牙，请假半天');
});

test('404: an unknown request says so in Chinese', async () => {
  await h.signedInParent(school);
  const detail = await h.open('request/detail', {id: 'r0123456789abcdef'});
  expect(h.text(detail, '#error')).toBe('未找到该请求，可能已被删除');
  expect(h.text(detail, '#retry')).toBe('重试');
});

test('422: a message Relay refuses is explained in its words and kept', async () => {
  const tooLong = '作业'.repeat(1001);
  const page = await writing(tooLong);
  await h.tap(page, '#send');
  await h.until(() => h.text(page, '#error'), 'the refusal');
  expect(h.text(page, '#error')).toBe('内容过长，请控制在 2000 字以内');
  expect(page.instance.data.draft.text).toBe(tooLong);
});

test('429: too many urgent messages gets a wait, and the message stays for later', async () => {
  const page = await writing('孩子在学校又发烧了，请马上联系我', 'g2');
  // Relay allows a guardian 5 urgent messages an hour (RELAY_RATE_LIMIT_URGENT): these use them up.
  for (let n = 1; n <= 5; n += 1) await h.submitDirect(school, `紧急情况第${n}次`, {student_id: 's3', urgent: true});
  await h.tap(page, '#urgent');
  await h.tap(page, '#send');
  await h.until(() => h.text(page, '#error'), 'the 429');
  expect(h.text(page, '#error')).toMatch(/^发送太频繁，请 \d+ 秒后再试$/);
  expect(page.instance.data.draft).toMatchObject({text: '孩子在学校又发烧了，请马上联系我', urgent: true});
  expect(h.text(page, '#send')).toBe('重试');
});

const withoutFollowUp = h.stack.features.follow_up ? test.skip : test;

withoutFollowUp('a Relay without the follow-up route: a clear sentence, and the words stay', async () => {
  await h.signedInParent(school);
  const made = await h.submitDirect(school, '请问明天要带水彩笔吗？');
  const detail = await h.open('request/detail', {id: made.id});
  await h.type(detail, '#follow-up', '还有剪刀吗？');
  await h.tap(detail, '#send-follow-up');
  await h.until(() => h.text(detail, '#follow-up-error'), 'the follow-up refusal');
  expect(h.text(detail, '#follow-up-error')).toBe('学校暂未开通补充说明，请直接新写一条消息');
  expect(h.bridge().storage.get(`relay.draft.follow-up.${made.id}`).text).toBe('还有剪刀吗？');
});
