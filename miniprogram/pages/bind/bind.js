// Binding: the school's one-time code, and the parent's consent to the privacy notice Relay serves
// (the version it names, and health information separately) before anything about a child is sent.
const api = require('../../lib/api');
const i18n = require('../../lib/i18n');
const session = require('../../lib/session');

Component({
  data: {w: i18n.words(), code: '', privacy: false, health: false, notice: {version: '', url: ''}, busy: false, error: ''},
  methods: {
    async onLoad() {
      this.setData({w: i18n.words()});
      try {
        await this.pending();
      } catch (error) {
        this.setData({error: api.describe(error)});
      }
    },
    // The binding token of this WeChat user, asking WeChat again when there is none (or it ran out).
    async pending(fresh = false) {
      let pending = fresh ? null : session.pendingBinding();
      if (!pending) {
        session.signInAllowed();
        const signed = await session.signIn();
        if (signed.bound) {
          wx.reLaunch({url: '/pages/home/home'});
          return null;
        }
        pending = session.pendingBinding();
      }
      this.setData({notice: pending.privacy_notice});
      return pending;
    },
    onCode(event) {
      this.setData({code: event.detail.value.trim(), error: ''});
    },
    togglePrivacy() {
      this.setData({privacy: !this.data.privacy, error: ''});
    },
    toggleHealth() {
      this.setData({health: !this.data.health, error: ''});
    },
    openNotice() {
      wx.navigateTo({url: `/pages/privacy/privacy?url=${encodeURIComponent(this.data.notice.url)}`});
    },
    switchLang() {
      this.setData({w: i18n.toggle()});
    },
    async submit() {
      const w = this.data.w;
      if (!this.data.code) return this.setData({error: w.codeNeeded});
      if (!this.data.privacy || !this.data.health) return this.setData({error: w.consentNeeded});
      if (this.data.busy) return undefined;
      this.setData({busy: true, error: ''});
      try {
        try {
          await session.bind(this.data.code, this.data.notice.version);
        } catch (error) {
          // The binding token lasts 10 minutes: a parent who read the notice slowly gets a new one, silently.
          if (error.code !== 'invalid_binding_token') throw error;
          if (!(await this.pending(true))) return undefined;
          await session.bind(this.data.code, this.data.notice.version);
        }
        wx.reLaunch({url: '/pages/home/home'});
      } catch (error) {
        this.setData({error: api.describe(error)});
      } finally {
        this.setData({busy: false});
      }
      return undefined;
    },
  },
});
