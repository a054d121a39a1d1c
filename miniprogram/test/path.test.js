// The whole path a parent walks, on the pages, against a real Relay: bind, write about a fever, see P0 with
// its owner and ETA, mark a routine request urgent, read the teacher's reply, add a follow-up.
const h = require('./helpers');

let school;

beforeAll(async () => {
  school = await h.newSchool();
});

beforeEach(() => h.resetPhone());

test('a new parent binds with the school code after consenting to the notice Relay serves', async () => {
  await h.nextLogin(`o-${school.school_id}-new`);
  const home = await h.open('home/home');
  expect(h.bridge().last('redirectTo')).toBe('/pages/bind/bind');

  const bind = await h.open('bind/bind');
  const notice = await h.relay('GET', '/privacy');
  expect(notice.status).toBe(200);
  await h.until(() => bind.instance.data.notice.version, 'the privacy notice version');
  expect(h.text(bind, '#notice-version')).toContain(bind.instance.data.notice.version);

  await h.type(bind, '#code', await h.bindingCode(school));
  await h.tap(bind, '#bind');
  expect(h.text(bind, '#error')).toBe('请先阅读并勾选两项同意'); // nothing sent without consent
  await h.tap(bind, '#consent-privacy');
  await h.tap(bind, '#consent-health');
  await h.tap(bind, '#bind');
  await h.until(() => h.bridge().last('reLaunch') === '/pages/home/home', 'home after binding');

  await home.instance.load();
  expect(h.text(home, '#school')).toBe(`测试小学 ${school.school_id}`);
  expect(home.dom.textContent).toContain('张小明 · 三年级2班');
  expect(h.text(home, '#empty')).toBe('还没有发过消息');
});

test('a fever report: the parent sees P0, who has it and when to expect an answer, and 120', async () => {
  await h.signedInParent(school);
  const page = await h.open('new/new');
  await h.until(() => page.instance.data.children.length, 'the children');
  await h.tap(page, '#child-s1');
  await h.tap(page, '#hint-2'); // 身体不适
  await h.type(page, '#text', '孩子早上发烧39度，精神很差，在学校又吐了');
  await h.tap(page, '#send');
  await h.until(() => h.bridge().last('redirectTo').startsWith('/pages/request/detail'), 'the request page');
  expect(h.bridge().subscribeAsks).toEqual([['tpl-received', 'tpl-assigned', 'tpl-answered']]);
  const sent = h.bridge().sent.find((s) => s.method === 'POST' && s.url.endsWith('/v1/requests'));
  expect(JSON.parse(sent.data)).toMatchObject({student_id: 's1', category_hint: '身体不适', urgent: false});
  expect(sent.headers['Idempotency-Key']).toMatch(/^mp-/);

  const detail = await h.open('request/detail', {id: h.requestId(h.bridge().last('redirectTo'))});
  expect(h.text(detail, '#urgency')).toBe('紧急');
  expect(h.text(detail, '#owner')).toMatch(/（(教务|校医)）/);
  expect(h.text(detail, '#eta').length).toBeGreaterThan(0);
  expect(h.text(detail, '#call120')).toBe('危急请拨打120');
  expect(detail.querySelector('#mark-urgent')).toBeFalsy(); // already an emergency
  await h.tap(detail, '#dial120');
  await h.until(() => h.bridge().phoneCalls.includes('120'), 'a call to 120');
});

const withSchoolPhone = h.stack.features.school_phone ? test : test.skip;
const withFollowUp = h.stack.features.follow_up ? test : test.skip;
const note = (what) => (h.stack.features.follow_up && h.stack.features.school_phone ? '' : ` [${what}]`);

withSchoolPhone(`on an emergency: the school phone one tap away, who was told, who has come, how it ended${note('skips while this Relay sends no school_phone: branch emergency adds it')}`, async () => {
  await h.signedInParent(school);
  const made = await h.submitDirect(school, '孩子摔倒了头在流血');
  const detail = await h.open('request/detail', {id: made.id});
  await h.tap(detail, '#call-school');
  await h.until(() => h.bridge().phoneCalls.includes(school.phone), 'a call to the school');
  expect(h.text(detail, '#told')).toContain('刘校医（校医）');

  const nurse = {token: school.tokens.nurse};
  expect((await h.relay('POST', `/v1/requests/${made.id}/ack`, nurse)).status).toBe(200);
  expect((await h.relay('POST', `/v1/requests/${made.id}/on-site`, nurse)).status).toBe(200);
  await detail.instance.load();
  expect(h.text(detail, '#acknowledged')).toMatch(/^刘校医（校医）已确认（.+）$/);
  expect(h.text(detail, '#on-site')).toMatch(/^刘校医已到场（.+）$/);

  const closed = await h.relay('POST', `/v1/requests/${made.id}/resolve`,
    Object.assign({body: {message: '已包扎好，孩子回教室了', outcome: 'back_to_class'}}, nurse));
  expect(closed.status).toBe(200);
  await detail.instance.load();
  expect(h.text(detail, '#outcome')).toBe('回教室');
  expect(h.text(detail, '#closing-message')).toBe('已包扎好，孩子回教室了');
  expect(h.text(detail, '#status')).toBe('已办结');
  expect(detail.querySelector('#call120')).toBeFalsy(); // closed: no longer an alarm
});

test('a routine request marked urgent becomes P0 and the reply reaches the page', async () => {
  await h.signedInParent(school);
  const page = await h.open('new/new');
  await h.until(() => page.instance.data.children.length, 'the children');
  await h.tap(page, '#hint-3'); // 作业
  await h.type(page, '#text', '请问这周的数学作业是哪几页？');
  await h.tap(page, '#send');
  await h.until(() => h.bridge().last('redirectTo').startsWith('/pages/request/detail'), 'the request page');
  const id = h.requestId(h.bridge().last('redirectTo'));

  const detail = await h.open('request/detail', {id});
  expect(h.text(detail, '#urgency')).not.toBe('紧急');
  expect(h.text(detail, '#no-replies')).toBe('暂无回复');
  await h.tap(detail, '#mark-urgent');
  await h.until(() => h.text(detail, '#urgency') === '紧急', 'P0 after marking urgent');
  expect(h.bridge().toasts).toContain('已标记为紧急，校医和值班领导已收到提醒');
  expect((await h.relay('GET', `/v1/requests/${id}`, {token: school.tokens.aa})).json.urgency).toBe('P0');

  const replied = await h.relay('POST', `/v1/requests/${id}/reply`, {token: school.tokens.aa, body: {text: '第12到15页，明天交。'}});
  expect(replied.status).toBe(200);
  await detail.instance.load();
  expect(detail.dom.textContent).toContain('第12到15页，明天交。');
  expect(h.text(detail, '#status')).toBe('老师已回复');
});

withFollowUp(`the parent adds to the same thread${note('skips while POST /v1/requests/{id}/follow-up answers 404/405: branch emergency adds it')}`, async () => {
  await h.signedInParent(school);
  const made = await h.submitDirect(school, '请问明天几点放学？');
  const detail = await h.open('request/detail', {id: made.id});
  await h.type(detail, '#follow-up', '好的，谢谢老师，另外周五要带什么？');
  await h.tap(detail, '#send-follow-up');
  await h.until(() => !detail.instance.data.sending && h.bridge().sent.some((s) => s.url.endsWith('/follow-up')), 'the follow-up');
  expect(h.text(detail, '#follow-up-error')).toBeNull();
  const sent = h.bridge().sent.filter((s) => s.url.endsWith('/follow-up'));
  expect(sent).toHaveLength(1);
  expect(sent[0].headers['Idempotency-Key']).toMatch(/^mp-/);
  expect(detail.dom.textContent).toContain('家长补充');
});
