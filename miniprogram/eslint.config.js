// Lint for the mini-program (npm test runs it first): ESLint's recommended rules, WeChat's globals.
const js = require('@eslint/js');
const globals = require('globals');

const wechat = {wx: 'readonly', App: 'readonly', Page: 'readonly', Component: 'readonly', Behavior: 'readonly',
  getApp: 'readonly', getCurrentPages: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
  setInterval: 'readonly', clearInterval: 'readonly'};

module.exports = [
  {ignores: ['node_modules/**']},
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: {ecmaVersion: 2022, sourceType: 'commonjs', globals: Object.assign({}, globals.es2021, wechat)},
    rules: {
      'no-var': 'error',
      'prefer-const': 'error',
      eqeqeq: 'error',
      'no-console': 'error',
    },
  },
  {
    files: ['test/**/*.js', 'scripts/**/*.js', '*.config.js'],
    languageOptions: {globals: Object.assign({}, globals.node, globals.jest, {bridge: 'readonly', document: 'readonly'})},
  },
];
