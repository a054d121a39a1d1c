// Home: the guardian's children and their requests, newest first, each with its status in words.
const api = require('../../lib/api');
const i18n = require('../../lib/i18n');
const session = require('../../lib/session');
const {present} = require('../../lib/status');

Component({
  data: {w: i18n.words(), loading: true, school: '', children: [], requests: [], error: '', signedOut: false},
  methods: {
    onShow() {
      return this.load();
    },
    async load() {
      this.setData({w: i18n.words(), signedOut: session.isSignedOut(), error: ''});
      if (session.isSignedOut()) return;
      try {
        if (!session.signedIn() && !(await session.signIn()).bound) {
          wx.redirectTo({url: '/pages/bind/bind'});
          return;
        }
        const [me, requests] = await Promise.all([api.me(), api.myRequests()]);
        wx.setNavigationBarTitle({title: me.school.name});
        this.setData({
          loading: false,
          school: me.school.name,
          children: me.children,
          requests: requests.map((r) => present(r, me.children)),
        });
      } catch (error) {
        if (error.kind === 'not_bound') {
          wx.redirectTo({url: '/pages/bind/bind'});
          return;
        }
        this.setData({loading: false, error: api.describe(error)});
      }
    },
    signInAgain() {
      session.signInAllowed();
      return this.load();
    },
    switchLang() {
      i18n.toggle();
      return this.load();
    },
    write() {
      wx.navigateTo({url: '/pages/new/new'});
    },
    open(event) {
      wx.navigateTo({url: `/pages/request/detail?id=${event.currentTarget.dataset.id}`});
    },
    settings() {
      wx.navigateTo({url: '/pages/me/me'});
    },
    onPullDownRefresh() {
      return this.load().then(() => wx.stopPullDownRefresh());
    },
  },
});
