/**
 * The process-level memory monitor (an overload manager in Envoy's sense).
 *
 * Worker `resourceLimits` bound a guest's JS heap but not its ArrayBuffers, nor the host's own
 * memory, so one number is watched for the whole process: its resident set size against the
 * deployment's `memory.limitMb`. Two actions follow from it, each at a fraction of the limit:
 *
 *   pressure ≥ rejectNewAt (0.95)  reject new work: TCP connection openings (a SYN without ACK) are
 *                                  dropped at the input port, and guests are not (re)started;
 *                                  established traffic still flows
 *   pressure ≥ shedAt (0.98)       shed: every packet arriving at an input port is dropped
 *
 * Each drop is counted as a host drop (`overload_new_flow`, `overload_shed`). A level is left only
 * when pressure falls a hysteresis band (1 % of the limit) below its threshold, so a reading that
 * hovers on a threshold does not flap.
 */
import { NfvError } from '../errors.js';

export interface OverloadPlan {
  /** The process memory budget, in bytes. */
  limitBytes: number;
  /** Fraction of the budget from which new flows and guest starts are refused. */
  rejectNewAt?: number;
  /** Fraction of the budget from which every arriving packet is shed. */
  shedAt?: number;
  /** The memory reading, in bytes: the process's RSS unless a test injects a pressure source. */
  readBytes?: () => number;
}

export const OverloadLevel = { Normal: 0, RejectNew: 1, Shed: 2 } as const;
export type OverloadLevel = (typeof OverloadLevel)[keyof typeof OverloadLevel];

const LEVEL_NAMES = ['normal', 'reject_new', 'shed'] as const;
export type OverloadLevelName = (typeof LEVEL_NAMES)[number];

const HYSTERESIS = 0.01;

export interface OverloadStatus {
  level: OverloadLevelName;
  /** Memory in use as a fraction of the limit (0 when no limit is set). */
  pressure: number;
  limitBytes: number;
  /** Times the level went up. */
  escalations: number;
}

export class OverloadManager {
  level: OverloadLevel = OverloadLevel.Normal;
  pressure = 0;
  escalations = 0;
  private readonly rejectNewAt: number;
  private readonly shedAt: number;
  private readonly readBytes: () => number;

  constructor(
    private readonly plan: OverloadPlan,
    private readonly onChange: (
      from: OverloadLevelName,
      to: OverloadLevelName,
      pressure: number,
    ) => void = () => {},
  ) {
    this.rejectNewAt = plan.rejectNewAt ?? 0.95;
    this.shedAt = plan.shedAt ?? 0.98;
    if (!(plan.limitBytes > 0))
      throw new NfvError('NFV_ERR_BAD_ARGUMENT', `memory limit must be positive (got ${plan.limitBytes})`);
    if (!(this.rejectNewAt > 0 && this.rejectNewAt <= this.shedAt && this.shedAt <= 1))
      throw new NfvError(
        'NFV_ERR_BAD_ARGUMENT',
        `memory thresholds must satisfy 0 < rejectNewAt ≤ shedAt ≤ 1 (got ${this.rejectNewAt}, ${this.shedAt})`,
      );
    this.readBytes = plan.readBytes ?? (() => process.memoryUsage.rss());
  }

  /** Takes a reading and moves to the level it calls for. Returns the level. */
  update(): OverloadLevel {
    this.pressure = this.readBytes() / this.plan.limitBytes;
    const target = this.levelFor(this.pressure);
    if (target !== this.level) {
      const from = this.level;
      this.level = target;
      if (target > from) this.escalations++;
      this.onChange(LEVEL_NAMES[from], LEVEL_NAMES[target], this.pressure);
    }
    return this.level;
  }

  private levelFor(p: number): OverloadLevel {
    // Going up happens at the threshold; coming down only below it by the hysteresis band.
    const shed = this.level === OverloadLevel.Shed ? this.shedAt - HYSTERESIS : this.shedAt;
    if (p >= shed) return OverloadLevel.Shed;
    const reject = this.level >= OverloadLevel.RejectNew ? this.rejectNewAt - HYSTERESIS : this.rejectNewAt;
    if (p >= reject) return OverloadLevel.RejectNew;
    return OverloadLevel.Normal;
  }

  status(): OverloadStatus {
    return {
      level: LEVEL_NAMES[this.level],
      pressure: this.pressure,
      limitBytes: this.plan.limitBytes,
      escalations: this.escalations,
    };
  }
}
