export * from './deployment.js';
export { DeploymentError, formatIssue, type DeploymentIssue } from './deployment-error.js';
export {
  parseDeployment,
  loadDeployment,
  readDeploymentFile,
  type ParseOptions,
  type NfConfigProblem,
} from './parse-deployment.js';
export { parseCidr, parsePortRange, parseProtocol, PROTOCOL_NAMES, type Parsed } from './match-fields.js';
export { DeploymentFileSchema } from './schema.js';
