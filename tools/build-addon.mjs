#!/usr/bin/env node
// Builds the native I/O addon (native/: TAP/TUN devices, recvmmsg/sendmmsg) with the node-gyp that
// npm bundles; run by `npm ci` / `npm install` through the "install" script. It never fails the
// install: without a compiler or Node's headers nfvisor runs on node:dgram and refuses TAP ports,
// and this prints why. Node's headers come from `nodedir` (npm's config, else /usr when
// /usr/include/node/node_api.h exists): node-gyp would otherwise try to download them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');

function nodeGypScript() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp))
    return process.env.npm_config_node_gyp;
  // npm's own copy, next to the npm that runs us (or the global one).
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..'));
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm'));
  for (const npmDir of candidates) {
    const script = join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(script)) return script;
  }
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

function warn(message) {
  process.stderr.write(
    `nfvisor: native addon not built (${message}); TAP ports are unavailable and tunnel ports use node:dgram\n`,
  );
}

if (process.platform !== 'linux') {
  warn(`${process.platform} is not Linux`);
  process.exit(0);
}
const script = nodeGypScript();
if (!script) {
  warn('node-gyp not found');
  process.exit(0);
}
const args = [script, 'rebuild'];
const nodedir =
  process.env.npm_config_nodedir ?? (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
if (nodedir) args.push(`--nodedir=${nodedir}`);
const result = spawnSync(process.execPath, args, { cwd: native, stdio: ['ignore', 'pipe', 'pipe'] });
if (result.status !== 0) {
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
  warn(result.error ? result.error.message : `node-gyp exited with ${result.status}`);
  if (output) process.stderr.write(`${output}\n`);
  process.exit(0);
}
process.stdout.write('nfvisor: native addon built (native/build/Release/nfvisor_io.node)\n');
