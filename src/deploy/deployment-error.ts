/**
 * The one error a deployment file that fails its checks produces: NFV_ERR_DEPLOY_INVALID, listing
 * every problem found, each located by file, line, column and field path.
 */
import { NfvError } from '../errors.js';

/**
 * One problem in a deployment file. `line` and `column` are 1-based; `path` is the field, written
 * `nfs.fw.vnic` or `chains[0].match.src` (empty for a problem of the whole file, e.g. YAML syntax).
 */
export interface DeploymentIssue {
  file: string;
  line: number;
  column: number;
  path: string;
  message: string;
}

/** `deploy.yaml:7:15: nfs.fw.vnic: must be one of direct, paravirt, emulated (got "fast")` */
export function formatIssue(issue: DeploymentIssue): string {
  const where = `${issue.file}:${issue.line}:${issue.column}: `;
  return issue.path === '' ? `${where}${issue.message}` : `${where}${issue.path}: ${issue.message}`;
}

/**
 * Thrown by `parseDeployment` / `loadDeployment`. `detail` locates the first problem
 * (`file`, `line`, `column`, `field`) and carries all of them as `detail.errors`, so they survive
 * `toJSON()` and a worker boundary; `errors` holds the same list.
 */
export class DeploymentError extends NfvError {
  readonly errors: readonly DeploymentIssue[];

  constructor(issues: readonly DeploymentIssue[]) {
    const first = issues[0];
    const count = issues.length === 1 ? '1 error' : `${issues.length} errors`;
    super(
      'NFV_ERR_DEPLOY_INVALID',
      `invalid deployment, ${count}:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}\n`,
      {
        file: first.file,
        line: first.line,
        column: first.column,
        field: first.path === '' ? undefined : first.path,
        errors: issues.map((i) => ({ ...i })),
      },
    );
    this.errors = issues;
  }
}
