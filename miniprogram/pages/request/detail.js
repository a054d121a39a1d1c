// One request: who has it, when to expect an answer (Relay's words), the replies, the parent's follow-up
// in the same thread, "mark urgent", and on an emergency the school's phone and 120.
const api = require('../../lib/api');
const config = require('../../config');
const drafts = require('../../lib/drafts');
const i18n = require('../../lib/i18n');
const {present} = require('../../lib/status');

function phoneCall(number) {
  return new Promise((resolve) => wx.makePhoneCall({phoneNumber: number, complete: () => resolve()}));
}

Component({
  data: {w: i18n.words(), id: '', view: {}, error: '', followUp: {text: '', key: ''}, followUpError: '', sending: false},
  methods: {
    onLoad(options) {
      const id = (options && options.id) || '';
      this.setData({w: i18n.words(), id, followUp: drafts.load(`follow-up.${id}`) || {text: '', key: ''}});
      return this.load();
    },
    onShow() {
      this.poll();
    },
    onHide() {
      clearTimeout(this.timer);
      this.timer = null;
    },
    onUnload() {
      this.onHide();
    },
    // While an open request is on screen, news arrives without a tap.
    poll() {
      if (!config.pollSeconds || this.timer) return;
      this.timer = setTimeout(async () => {
        this.timer = null;
        await this.load();
        if (this.data.view.open) this.poll();
      }, config.pollSeconds * 1000);
    },
    async load() {
      try {
        const request = await api.request(this.data.id);
        this.setData({view: present(request), error: ''});
      } catch (error) {
        this.failed(error);
      }
    },
    onPullDownRefresh() {
      return this.load().then(() => wx.stopPullDownRefresh());
    },
    failed(error) {
      if (error.kind === 'not_bound') {
        wx.redirectTo({url: '/pages/bind/bind'});
        return;
      }
      this.setData({error: api.describe(error)});
    },
    async markUrgent() {
      try {
        this.setData({view: present(await api.markUrgent(this.data.id)), error: ''});
        wx.showToast({title: this.data.w.markedUrgent, icon: 'none'});
      } catch (error) {
        this.failed(error);
      }
    },
    call120() {
      return phoneCall('120');
    },
    callSchool() {
      return phoneCall(this.data.view.schoolPhone);
    },
    onFollowUp(event) {
      const name = `follow-up.${this.data.id}`;
      this.setData({followUp: drafts.edit(name, this.data.followUp, {text: event.detail.value}), followUpError: ''});
    },
    async sendFollowUp() {
      const name = `follow-up.${this.data.id}`;
      if (this.data.sending) return;
      if (!this.data.followUp.text.trim()) {
        this.setData({followUpError: this.data.w.textNeeded});
        return;
      }
      const followUp = drafts.keyed(name, this.data.followUp);
      this.setData({followUp, sending: true, followUpError: ''});
      try {
        const view = await api.followUp(this.data.id, followUp.text, followUp.key);
        drafts.clear(name);
        this.setData({view: present(view), followUp: {text: '', key: ''}});
        wx.showToast({title: this.data.w.followUpSent, icon: 'none'});
      } catch (error) {
        if (error.kind === 'not_bound') {
          this.failed(error);
        } else {
          this.setData({followUpError: await this.followUpFailure(error)});
        }
      } finally {
        this.setData({sending: false});
      }
    },
    // A 404 or 405 for a request that still loads: this Relay has no follow-up route yet.
    async followUpFailure(error) {
      if (error.kind === 'http' && (error.status === 404 || error.status === 405)) {
        try {
          await api.request(this.data.id);
          return this.data.w.errors.followUpUnavailable;
        } catch (again) {
          return api.describe(again);
        }
      }
      return api.describe(error);
    },
  },
});
