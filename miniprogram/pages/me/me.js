// Settings: language, the privacy notice, sign-out, and deleting everything Relay holds about the parent.
const api = require('../../lib/api');
const config = require('../../config');
const i18n = require('../../lib/i18n');
const session = require('../../lib/session');

function confirmed(content, w) {
  return new Promise((resolve) => wx.showModal({
    content, confirmText: w.confirm, cancelText: w.cancel, confirmColor: '#cf222e',
    success: (res) => resolve(Boolean(res.confirm)),
    fail: () => resolve(false),
  }));
}

Component({
  data: {w: i18n.words(), error: ''},
  methods: {
    onLoad() {
      this.setData({w: i18n.words()});
    },
    switchLang() {
      this.setData({w: i18n.toggle()});
    },
    openNotice() {
      wx.navigateTo({url: `/pages/privacy/privacy?url=${encodeURIComponent(`${config.baseUrl}/privacy`)}`});
    },
    async signOut() {
      await session.signOut();
      wx.reLaunch({url: '/pages/home/home'});
    },
    async deleteData() {
      const w = this.data.w;
      if (!(await confirmed(w.deleteConfirm, w))) return;
      try {
        await api.deleteMyData();
        await session.signOut();
        wx.showToast({title: w.deleted, icon: 'none'});
        wx.reLaunch({url: '/pages/home/home'});
      } catch (error) {
        this.setData({error: api.describe(error)});
      }
    },
  },
});
