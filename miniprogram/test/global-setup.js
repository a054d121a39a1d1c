// Starts test/relay_stack.py (Redis, relay serve, relay worker, the local WeChat) with the repository's venv
// and hands its addresses to the tests in RELAY_MP_STACK.
const {spawn} = require('child_process');
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const PYTHON = path.resolve(__dirname, '../../.venv/bin/python');

module.exports = async function globalSetup() {
  if (!fs.existsSync(PYTHON)) {
    throw new Error(`the mini-program's tests need Relay's venv at ${PYTHON}: run \`make install\` at the repository's root`);
  }
  const child = spawn(PYTHON, [path.join(__dirname, 'relay_stack.py')], {stdio: ['pipe', 'pipe', 'inherit']});
  globalThis.relayStack = child;
  const line = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({input: child.stdout});
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`test/relay_stack.py exited (${code}) before it was ready`)));
  });
  process.env.RELAY_MP_STACK = line;
};
