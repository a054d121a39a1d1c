// Copies config.js's app id into project.config.json (read by WeChat DevTools and miniprogram-ci), so the
// app id is written in one place only.
const fs = require('fs');
const path = require('path');

const PROJECT = path.resolve(__dirname, '..', 'project.config.json');

function appIdOf(config) {
  if (!/^wx[0-9a-f]{16}$/.test(config.appId)) throw new Error(`config.js: appId ${config.appId} is not wx + 16 hex digits`);
  return config.appId;
}

function configure() {
  const project = JSON.parse(fs.readFileSync(PROJECT, 'utf8'));
  project.appid = appIdOf(require('../config'));
  fs.writeFileSync(PROJECT, `${JSON.stringify(project, null, 2)}\n`);
  return project.appid;
}

if (require.main === module) {
  process.stdout.write(`project.config.json: appid ${configure()}\n`);
}

module.exports = {appIdOf, configure};
