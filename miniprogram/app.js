// The mini-program's entry: every page talks to Relay through lib/api.js; nothing is kept here.
App({});
