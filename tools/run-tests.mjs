#!/usr/bin/env node
// Runs the compiled tests with node:test.
//   unit:   dist/src/**/*.test.js and dist/test/integration/**/*.test.js
//   system: dist/test/system/**/*.test.js (root, namespaces, tshark); any skipped test fails the run,
//           because CI must prove these ran, not that they were politely skipped.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const suite = process.argv[2] ?? 'unit';
const roots = suite === 'system' ? ['dist/test/system'] : ['dist/src', 'dist/nfs', 'dist/test/integration'];

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = roots.flatMap((r) => collect(r, []));
if (files.length === 0) {
  console.error(`run-tests: no ${suite} test files found under ${roots.join(', ')} (did the build run?)`);
  process.exit(1);
}
const child = spawn(process.execPath, ['--test', '--test-reporter=tap', ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let tail = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on('close', (code) => {
  const skipped = Number(/# skipped (\d+)/.exec(tail)?.[1] ?? 0);
  const todo = Number(/# todo (\d+)/.exec(tail)?.[1] ?? 0);
  if (suite === 'system' && (skipped > 0 || todo > 0)) {
    console.error(
      `run-tests: ${skipped} system test(s) skipped and ${todo} todo: the system suite must run in full`,
    );
    process.exit(1);
  }
  process.exit(code ?? 1);
});
