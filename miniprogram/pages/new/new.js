// A new request: the child, what it is about (sent as category_hint), the words, "这是紧急情况".
// The words stay in a draft with its Idempotency-Key until Relay answers 201: a retry sends the same key.
const api = require('../../lib/api');
const config = require('../../config');
const drafts = require('../../lib/drafts');
const i18n = require('../../lib/i18n');

const DRAFT = 'new';
const EMPTY = {student_id: '', category_hint: '', text: '', urgent: false, key: '', asked: false};

// Asked on the tap that sends (WeChat wants a tap), once per message: when it is received, when someone
// has it, when it is answered. Refusing never stops the message.
function askToBeTold() {
  const ids = ['received', 'assigned', 'answered'].map((name) => config.templates[name]).filter(Boolean);
  if (!ids.length) return Promise.resolve();
  return new Promise((resolve) => wx.requestSubscribeMessage({tmplIds: ids, complete: () => resolve()}));
}

Component({
  data: {w: i18n.words(), children: [], draft: EMPTY, sending: false, slow: false, offline: false, error: ''},
  methods: {
    async onLoad() {
      const draft = drafts.load(DRAFT) || Object.assign({}, EMPTY);
      this.setData({w: i18n.words(), draft});
      this.watchNetwork();
      try {
        const me = await api.me();
        this.setData({children: me.children});
        if (!draft.student_id && me.children.length) this.change({student_id: me.children[0].id});
      } catch (error) {
        this.failed(error);
      }
    },
    watchNetwork() {
      wx.getNetworkType({success: (res) => this.setData({offline: res.networkType === 'none'})});
      wx.onNetworkStatusChange((res) => this.setData({offline: !res.isConnected}));
    },
    change(changes) {
      this.setData({draft: drafts.edit(DRAFT, this.data.draft, changes), error: ''});
    },
    chooseChild(event) {
      this.change({student_id: event.currentTarget.dataset.id});
    },
    chooseCategory(event) {
      const hint = event.currentTarget.dataset.hint;
      this.change({category_hint: this.data.draft.category_hint === hint ? '' : hint});
    },
    onText(event) {
      this.change({text: event.detail.value});
    },
    toggleUrgent() {
      this.change({urgent: !this.data.draft.urgent});
    },
    failed(error) {
      if (error.kind === 'not_bound') {
        wx.redirectTo({url: '/pages/bind/bind'});
        return;
      }
      this.setData({error: api.describe(error), offline: error.kind === 'network' || this.data.offline});
    },
    async send() {
      const w = this.data.w;
      let draft = this.data.draft;
      if (this.data.sending) return;
      if (!draft.student_id) return this.setData({error: w.childNeeded});
      if (!draft.text.trim()) return this.setData({error: w.textNeeded});
      if (!draft.asked) {
        await askToBeTold();
        draft = drafts.save(DRAFT, Object.assign({}, draft, {asked: true}));
      }
      draft = drafts.keyed(DRAFT, draft);
      this.setData({draft, sending: true, slow: false, error: ''});
      const body = {student_id: draft.student_id, text: draft.text, urgent: draft.urgent};
      if (draft.category_hint) body.category_hint = draft.category_hint;
      try {
        const made = await api.submit(body, draft.key, () => this.setData({slow: true}));
        drafts.clear(DRAFT);
        this.setData({draft: Object.assign({}, EMPTY, {student_id: draft.student_id})});
        wx.redirectTo({url: `/pages/request/detail?id=${made.id}`});
      } catch (error) {
        this.failed(error);
      } finally {
        this.setData({sending: false, slow: false});
      }
    },
  },
});
