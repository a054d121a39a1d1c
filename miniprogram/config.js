// The one file a school edits before uploading: where its Relay runs and which mini-program this is.
module.exports = {
  // Relay's public address (RELAY_PUBLIC_URL); must be listed as a "request" domain in the mini-program console.
  baseUrl: 'https://relay.example.cn',
  // The mini-program's AppID (also RELAY_WECHAT_APP_ID on the server). `npm run configure` copies it into
  // project.config.json for WeChat DevTools and miniprogram-ci.
  appId: 'wx0000000000000000',
  // Subscribe-message template ids, as chosen in the console (RELAY_WECHAT_TEMPLATE_ID on the server is the
  // one Relay sends with); an empty id is simply not asked for.
  templates: {
    received: '',
    assigned: '',
    answered: '',
  },
  // A request that has not answered after this long shows the "slow network" state; it is abandoned after timeoutMs.
  slowAfterMs: 3000,
  timeoutMs: 15000,
  // How often an open request's page asks for news while it is on screen (0: only on show and pull-down).
  pollSeconds: 10,
};
