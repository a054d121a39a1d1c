// Closing its stdin tells test/relay_stack.py to stop its processes and clean its Redis keys.
module.exports = async function globalTeardown() {
  const child = globalThis.relayStack;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin.end();
  const killer = setTimeout(() => child.kill('SIGTERM'), 20000);
  await exited;
  clearTimeout(killer);
};
