/**
 * `nfvisor key …`: Ed25519 signing keys and the host's trust policy.
 *
 *   nfvisor key gen -o keys                       keys/signing.key (private, 0600) + keys/signing.pub
 *   nfvisor key trust keys/signing.pub --names 'acme/*'   allow that key to sign acme/… images
 *   nfvisor key id keys/signing.pub               print a key's id (sha256 of the raw public key)
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { NfvError } from '../errors.js';
import {
  exportKeyPair,
  generateSigningKey,
  ImageStore,
  keyIdOf,
  publicKeyFromPem,
  trustKey,
} from '../image/index.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new NfvError('NFV_ERR_KEY_INVALID', `cannot read key: ${(e as Error).message}`, { file });
  }
}

export function registerKey(program: Command): void {
  const key = program.command('key').description('signing keys and the trust policy');

  key
    .command('gen')
    .description('generate an Ed25519 key pair: <name>.key (private, mode 0600) and <name>.pub')
    .requiredOption('-o, --output <dir>', 'directory to write the key pair into')
    .option('--name <name>', 'file name stem', 'signing')
    .action(async (flags: { output: string; name: string }) => {
      const privateFile = join(flags.output, `${flags.name}.key`);
      const publicFile = join(flags.output, `${flags.name}.pub`);
      if (existsSync(privateFile))
        throw new NfvError('NFV_ERR_BAD_ARGUMENT', 'refusing to overwrite an existing key', {
          file: privateFile,
        });
      const pair = generateSigningKey();
      const { privatePem, publicPem } = exportKeyPair(pair);
      try {
        await mkdir(flags.output, { recursive: true, mode: 0o700 });
        await writeFile(privateFile, privatePem, { mode: 0o600, flag: 'wx' });
        await writeFile(publicFile, publicPem, { mode: 0o644 });
      } catch (e) {
        throw new NfvError('NFV_ERR_IO', `cannot write key: ${(e as Error).message}`, { file: flags.output });
      }
      console.log(`key ${pair.keyId}\nprivate ${privateFile}\npublic  ${publicFile}`);
    });

  key
    .command('trust <public-key>')
    .description(
      'allow a public key to sign images whose names match the patterns (adds it to the trust policy)',
    )
    .option('--names <pattern>', 'name pattern, e.g. acme/* or ** (repeatable)', collect, [])
    .option('--policy <file>', 'trust policy (default: $NFVISOR_HOME/trust-policy.json)')
    .option('--comment <text>', 'a label for the key')
    .action(async (file: string, flags: { names: string[]; policy?: string; comment?: string }) => {
      if (flags.names.length === 0)
        throw new NfvError('NFV_ERR_BAD_ARGUMENT', 'give at least one --names pattern', { field: '--names' });
      const policy = flags.policy ?? join(ImageStore.home(), 'trust-policy.json');
      await mkdir(join(policy, '..'), { recursive: true });
      const id = await trustKey(policy, await readText(file), flags.names, flags.comment);
      console.log(`trusted ${id} for ${flags.names.join(', ')} in ${policy}`);
    });

  key
    .command('id <key-file>')
    .description('print the id of a public or private key file')
    .action(async (file: string) => {
      const text = await readText(file);
      const publicKey = text.includes('PRIVATE KEY')
        ? publicKeyFromPem(createPublicKey(text).export({ format: 'pem', type: 'spki' }).toString(), file)
        : publicKeyFromPem(text, file);
      console.log(keyIdOf(publicKey));
    });
}
