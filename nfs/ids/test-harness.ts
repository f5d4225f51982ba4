/**
 * The IDS in a test's thread (NfHarness) with small tables, so that creating one per test is cheap;
 * `ids` is the instance, for its alerts and snapshots.
 */
import { NfHarness } from '../../src/sdk/index.js';
import ids, { type IdsConfig, type IdsInstance } from './index.js';

/** Small stream and fragment tables. */
const SMALL: Partial<IdsConfig> = {
  maxStreams: 64,
  reassemblyBytes: 64 << 10,
  maxFragmentedDatagrams: 64,
  fragmentBytes: 256 << 10,
};

export function idsHarness(
  rules: string[],
  extra: Partial<IdsConfig> = {},
): NfHarness<IdsConfig> & { ids: IdsInstance } {
  const nf = new NfHarness(ids, { rules, ...SMALL, ...extra }) as NfHarness<IdsConfig> & { ids: IdsInstance };
  nf.ids = nf.instance as IdsInstance;
  return nf;
}
