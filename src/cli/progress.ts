/**
 * Progress for long runs: a bar on a terminal (cli-progress), a plain line every few seconds
 * otherwise (CI logs), and nothing for short runs that finish before the first report is due.
 */
import cliProgress from 'cli-progress';

const FIRST_REPORT_MS = 500;
const PLAIN_INTERVAL_MS = 5000;

export class ProgressReporter {
  private bar: cliProgress.SingleBar | null = null;
  private readonly started = Date.now();
  private lastPlain = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly unit: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  /** Reports `done` of `total`; cheap to call often (it reads the clock, nothing more). */
  update(done: number): void {
    const now = Date.now();
    if (now - this.started < FIRST_REPORT_MS) return;
    if (this.stream.isTTY) {
      if (this.bar === null) {
        this.bar = new cliProgress.SingleBar(
          {
            format: `${this.label} [{bar}] {percentage}% | {value}/{total} ${this.unit} | {eta_formatted} left`,
            stream: this.stream,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(this.total, done);
      } else this.bar.update(done);
    } else if (now - this.lastPlain >= PLAIN_INTERVAL_MS) {
      this.lastPlain = now;
      this.stream.write(
        `${this.label}: ${done}/${this.total} ${this.unit} (${((100 * done) / Math.max(1, this.total)).toFixed(0)}%)\n`,
      );
    }
  }

  stop(): void {
    if (this.bar !== null) {
      this.bar.update(this.total);
      this.bar.stop();
    }
  }
}
