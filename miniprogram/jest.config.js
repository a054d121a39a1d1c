// The pages run in miniprogram-simulate (jsdom); wx.request reaches a real Relay that global-setup starts.
module.exports = {
  testEnvironment: 'jsdom',
  testMatch: ['<rootDir>/test/**/*.test.js'],
  globalSetup: '<rootDir>/test/global-setup.js',
  globalTeardown: '<rootDir>/test/global-teardown.js',
  setupFilesAfterEnv: ['<rootDir>/test/wx-bridge.js'],
  testTimeout: 30000,
  maxWorkers: 2,
};
