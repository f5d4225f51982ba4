#!/usr/bin/env node
// Checks that imports flow one way between the folders of src/ (../shared/STYLE.md, "Where things
// live"): packet ← mem ← sdk ← nfs; io, host, obs may use packet, mem, sdk, errors; control and cli
// use the rest; nothing imports cli or control; host never imports nfs. Run by `npm test`.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';

/** Folder → folders it may import from (besides itself). */
const allowed = {
  errors: [],
  packet: ['errors'],
  mem: ['packet', 'errors'],
  sdk: ['packet', 'mem', 'errors'],
  io: ['packet', 'mem', 'sdk', 'errors'],
  obs: ['packet', 'mem', 'sdk', 'errors'],
  host: ['packet', 'mem', 'sdk', 'io', 'obs', 'errors'],
  deploy: ['packet', 'mem', 'sdk', 'io', 'obs', 'errors'],
  image: ['packet', 'mem', 'sdk', 'errors'],
  control: ['packet', 'mem', 'sdk', 'io', 'obs', 'host', 'deploy', 'image', 'errors'],
  cli: ['packet', 'mem', 'sdk', 'io', 'obs', 'host', 'deploy', 'image', 'control', 'testbed', 'errors'],
  // Namespaces, veths and servers for `nfvisor testbed` and the system tests: iproute2, no packet path.
  testbed: ['errors'],
};

function files(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files(path, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

function area(path) {
  const rel = relative('src', path);
  const first = rel.split(/[\\/]/)[0];
  return first.replace(/\.(ts|js)$/, '');
}

const problems = [];
// A built-in NF is written only against the SDK and the wire formats, like a third-party one.
if (existsSync('nfs')) {
  for (const file of files('nfs')) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm)) {
      const target = relative(process.cwd(), resolve(dirname(file), match[1]));
      const inOwnFolder = target.startsWith(dirname(file).split(/[\\/]/).slice(0, 2).join('/'));
      if (!inOwnFolder && !target.startsWith('src/sdk') && !target.startsWith('src/packet')) {
        problems.push(`${file}: an NF may import only src/sdk and src/packet (${match[1]})`);
      }
    }
  }
}
for (const file of files('src')) {
  const from = area(file);
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm)) {
    const target = resolve(dirname(file), match[1]);
    const to = area(relative(process.cwd(), target));
    if (to === from) continue;
    if (!(from in allowed)) problems.push(`${file}: folder src/${from} is not in tools/check-layers.mjs`);
    else if (!allowed[from].includes(to))
      problems.push(`${file}: src/${from} may not import src/${to} (${match[1]})`);
  }
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
