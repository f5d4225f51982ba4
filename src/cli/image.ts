/**
 * `nfvisor image …` and `nfvisor nf …`: build, store, sign, verify and ship NF images; start and
 * test a third-party NF.
 *
 *   nfvisor nf new dns-blocklist ./nf-dns-blocklist     scaffold an NF and its test
 *   nfvisor nf test ./nf-dns-blocklist                  run its tests against this nfvisor's SDK
 *   nfvisor image build ./nf-dns-blocklist -t acme/dns-blocklist:1.0.0
 *   nfvisor image sign acme/dns-blocklist:1.0.0 --key keys/signing.key
 *   nfvisor image verify acme/dns-blocklist:1.0.0
 *   nfvisor image save acme/dns-blocklist:1.0.0 -o dns.tar   →   nfvisor image load dns.tar
 *
 * Every image command takes `--store DIR` (default `$NFVISOR_HOME/images` or `~/.nfvisor/images`);
 * verify takes `--policy FILE` (default `$NFVISOR_HOME/trust-policy.json`).
 */
import type { Command } from 'commander';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NfvError } from '../errors.js';
import {
  buildImage,
  decodeImage,
  formatImageRef,
  ImageStore,
  loadImage,
  parseImageRef,
  readSigningKey,
  readTrustPolicy,
  runNfTests,
  saveImage,
  scaffoldNf,
  signImage,
  verifyImage,
} from '../image/index.js';
import { parseInteger } from './options.js';

interface StoreFlags {
  store?: string;
  json?: boolean;
}

function storeOf(flags: StoreFlags): ImageStore {
  return new ImageStore(flags.store ?? ImageStore.defaultRoot());
}

function defaultPolicyFile(): string {
  return join(ImageStore.home(), 'trust-policy.json');
}

const STORE_HELP = 'image store directory (default: $NFVISOR_HOME/images or ~/.nfvisor/images)';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerImage(program: Command): void {
  const image = program.command('image').description('build, store, sign, verify and ship NF images');

  image
    .command('build <dir>')
    .description("bundle an NF's source folder into an image and store it")
    .option('-t, --tag <name:tag>', 'tag for the image (default: <nf name>:<version>)')
    .option('--version <version>', 'image version (default: package.json "version")')
    .option(
      '--capability <name>',
      'request a capability (repeatable): fs, net, http, dgram, child_process, worker_threads',
      collect,
      [],
    )
    .option('--heap-mb <n>', 'heap the NF needs, MiB (default: package.json nfvisor.heapMb or 64)')
    .option('--store <dir>', STORE_HELP)
    .option('--json', 'print the result as JSON', false)
    .action(
      async (
        dir: string,
        flags: StoreFlags & { tag?: string; version?: string; capability: string[]; heapMb?: string },
      ) => {
        const store = storeOf(flags);
        const built = await buildImage(dir, {
          version: flags.version,
          capabilities: flags.capability.length > 0 ? flags.capability : undefined,
          heapMb: flags.heapMb !== undefined ? parseInteger('--heap-mb', flags.heapMb, 1, 4096) : undefined,
        });
        const tag = flags.tag ?? `${built.manifest.name}:${built.manifest.version}`;
        const digest = await store.putImage(built.bytes);
        await store.tag(tag, digest);
        if (flags.json) console.log(JSON.stringify({ tag, digest, manifest: built.manifest }, null, 2));
        else
          console.log(
            `built ${tag} ${digest} (${built.manifest.name} ${built.manifest.version}, ${built.bundle.length} bytes of code` +
              `${built.manifest.capabilities.length > 0 ? `, capabilities ${built.manifest.capabilities.join(',')}` : ''})`,
          );
      },
    );

  image
    .command('ls')
    .description('list stored images and their tags')
    .option('--store <dir>', STORE_HELP)
    .option('--json', 'print as JSON', false)
    .action(async (flags: StoreFlags) => {
      const images = await storeOf(flags).list();
      if (flags.json) {
        console.log(
          JSON.stringify(
            images.map((i) => ({
              digest: i.digest,
              tags: i.tags,
              name: i.manifest.name,
              version: i.manifest.version,
              bytes: i.bytes,
              signatures: i.signatures,
            })),
            null,
            2,
          ),
        );
        return;
      }
      const rows = [['TAG', 'NF', 'VERSION', 'DIGEST', 'SIZE', 'SIGNATURES']];
      for (const i of images)
        for (const tag of i.tags.length > 0 ? i.tags : ['<none>'])
          rows.push([
            tag,
            i.manifest.name,
            i.manifest.version,
            i.digest.slice(0, 19),
            `${i.bytes}`,
            `${i.signatures}`,
          ]);
      const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
      for (const r of rows)
        console.log(
          r
            .map((cell, c) => cell.padEnd(widths[c]))
            .join('  ')
            .trimEnd(),
        );
    });

  image
    .command('inspect <ref>')
    .description('print an image’s digest, tags, manifest and signatures as JSON')
    .option('--store <dir>', STORE_HELP)
    .action(async (ref: string, flags: StoreFlags) => {
      const store = storeOf(flags);
      const { digest } = await store.resolve(ref);
      const { manifest } = decodeImage(await store.readBlob(digest), store.blobPath(digest));
      const tags = Object.entries(await store.tags())
        .filter(([, d]) => d === digest)
        .map(([t]) => t)
        .sort();
      const signatures = (await store.signatures(digest)).map(({ file, signature }) => {
        if (signature === undefined) return { file, malformed: true };
        let payload: unknown;
        try {
          payload = JSON.parse(Buffer.from(signature.payload, 'base64').toString('utf8'));
        } catch {
          payload = undefined;
        }
        return { keyId: signature.keyId, payload, file };
      });
      console.log(JSON.stringify({ digest, tags, manifest, signatures }, null, 2));
    });

  image
    .command('rm <ref>')
    .description(
      'remove a tag; the image goes when no tag points at it (a digest removes it and all its tags)',
    )
    .option('--store <dir>', STORE_HELP)
    .action(async (ref: string, flags: StoreFlags) => {
      const { untagged, deleted } = await storeOf(flags).remove(ref);
      for (const t of untagged) console.log(`untagged ${t}`);
      if (deleted) console.log(`deleted ${deleted}`);
    });

  image
    .command('tag <src> <dst>')
    .description('point tag DST (name:tag) at the image SRC refers to')
    .option('--store <dir>', STORE_HELP)
    .action(async (src: string, dst: string, flags: StoreFlags) => {
      const store = storeOf(flags);
      const { digest } = await store.resolve(src);
      await store.tag(dst, digest);
      console.log(`${formatImageRef(parseImageRef(dst))} → ${digest}`);
    });

  image
    .command('sign <ref>')
    .description('sign an image for the name it is referred to by, with an Ed25519 private key')
    .requiredOption('--key <file>', 'private key (PKCS#8 PEM, from `nfvisor key gen`)')
    .option('--store <dir>', STORE_HELP)
    .action(async (ref: string, flags: StoreFlags & { key: string }) => {
      const store = storeOf(flags);
      const { digest, name } = await store.resolve(ref);
      const { manifest } = decodeImage(await store.readBlob(digest), store.blobPath(digest));
      const key = await readSigningKey(flags.key);
      const file = await store.addSignature(
        digest,
        signImage(key.privateKey, digest, name ?? manifest.name, manifest.version),
      );
      console.log(`signed ${name ?? manifest.name}@${digest} with ${key.keyId}\n${file}`);
    });

  image
    .command('verify <ref>')
    .description('check digest, manifest, capabilities, signature, trust policy and version')
    .option('--policy <file>', 'trust policy (default: $NFVISOR_HOME/trust-policy.json)')
    .option('--allow-unsigned', 'accept an image without a trusted signature (development only)', false)
    .option('--allow-rollback', 'accept a version older than one verified before', false)
    .option('--store <dir>', STORE_HELP)
    .action(
      async (
        ref: string,
        flags: StoreFlags & { policy?: string; allowUnsigned: boolean; allowRollback: boolean },
      ) => {
        const store = storeOf(flags);
        const policyFile = flags.policy ?? defaultPolicyFile();
        const policy =
          flags.allowUnsigned && flags.policy === undefined ? undefined : await readTrustPolicy(policyFile);
        const verified = await verifyImage(ref, {
          store: store.root,
          policy,
          allowUnsigned: flags.allowUnsigned,
          allowRollback: flags.allowRollback,
        });
        console.log(
          `verified ${verified.name}@${verified.digest} (${verified.manifest.name} ${verified.manifest.version}, ` +
            `${verified.signedBy ? `signed by ${verified.signedBy}` : 'UNSIGNED, allowed by --allow-unsigned'})`,
        );
      },
    );

  image
    .command('save <ref>')
    .description('write an image, its signatures and its tag into a tar file')
    .requiredOption('-o, --output <file>', 'tar file to write')
    .option('--store <dir>', STORE_HELP)
    .action(async (ref: string, flags: StoreFlags & { output: string }) => {
      const tar = await saveImage(storeOf(flags), ref);
      try {
        await writeFile(flags.output, tar);
      } catch (e) {
        throw new NfvError('NFV_ERR_IO', `cannot write: ${(e as Error).message}`, { file: flags.output });
      }
      console.log(`saved ${ref} to ${flags.output} (${tar.length} bytes)`);
    });

  image
    .command('load <file>')
    .description('load images saved with `image save` into the store')
    .option('--store <dir>', STORE_HELP)
    .action(async (file: string, flags: StoreFlags) => {
      let tar: Uint8Array;
      try {
        tar = await readFile(file);
      } catch (e) {
        throw new NfvError('NFV_ERR_IO', `cannot read: ${(e as Error).message}`, { file });
      }
      for (const { digest, tags } of await loadImage(storeOf(flags), tar, file))
        console.log(`loaded ${digest}${tags.length > 0 ? ` as ${tags.join(', ')}` : ''}`);
    });

  const nf = program.command('nf').description('write a network function outside nfvisor');
  nf.command('new <name> [dir]')
    .description(
      'scaffold a third-party NF (index.ts, index.test.ts, package.json) in DIR (default: ./nf-<name>)',
    )
    .action(async (name: string, dir: string | undefined) => {
      const files = await scaffoldNf(name, dir ?? `nf-${name}`);
      for (const f of files) console.log(`created ${f}`);
      console.log(
        `next: nfvisor nf test ${dir ?? `nf-${name}`} && nfvisor image build ${dir ?? `nf-${name}`}`,
      );
    });
  nf.command('test [dir]')
    .description(
      "run an NF's *.test.ts against this nfvisor's SDK (bundled with esbuild, run by node --test)",
    )
    .action(async (dir: string | undefined) => {
      const { code } = await runNfTests(dir ?? '.', { stdio: 'inherit' });
      if (code !== 0) process.exitCode = code;
    });
}
