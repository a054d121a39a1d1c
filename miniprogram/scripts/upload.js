// Uploads this mini-program with miniprogram-ci (WeChat's CI tool, installed on demand: see README.md).
// Needs the upload key from the console: MINIPROGRAM_KEY=path/to/private.key npm run upload -- 1.0.0 "notes"
const path = require('path');
const {configure} = require('./configure');

async function main() {
  const [version, description = ''] = process.argv.slice(2);
  const keyPath = process.env.MINIPROGRAM_KEY;
  if (!version || !keyPath) {
    throw new Error('usage: MINIPROGRAM_KEY=private.key npm run upload -- VERSION "description"');
  }
  const ci = require('miniprogram-ci'); // installed on demand (README.md), not a test dependency
  const project = new ci.Project({
    appid: configure(),
    type: 'miniProgram',
    projectPath: path.resolve(__dirname, '..'),
    privateKeyPath: keyPath,
    ignores: ['node_modules/**/*', 'test/**/*', 'scripts/**/*'],
  });
  await ci.upload({project, version, desc: description, setting: {es6: true, es7: true, minify: true}});
  process.stdout.write(`uploaded ${version}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
