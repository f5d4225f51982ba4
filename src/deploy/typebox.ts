/**
 * TypeBox, the parts nfvisor uses, from one module. `npm run build` replaces this module's output
 * with a one-file bundle of the same exports (tools/bundle-deps.mjs): importing the package
 * loads ~250 ES modules, 80–140 ms of every CLI start on the reference machine; the bundle
 * loads in ~13 ms. Import TypeBox from here, not from the package.
 */
export { Type, type Static, type TSchema } from '@sinclair/typebox';
export { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
