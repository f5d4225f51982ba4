/**
 * The YAML parser, the parts nfvisor uses, from one module. `npm run build` replaces this module's
 * output with a one-file bundle of the same exports (tools/bundle-deps.mjs): the package is ~40
 * CommonJS files, ~43 ms of every CLI start that reads a deployment on the reference machine; the
 * bundle loads in ~15–24 ms. Import the parser from here, not from the package.
 */
export {
  Document,
  LineCounter,
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseDocument,
  type Node,
} from 'yaml';
