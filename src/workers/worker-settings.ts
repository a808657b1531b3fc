/** What the primary tells a worker at spawn time (argv[2], JSON; nothing secret in it). */
import type { LogFormat } from '../log/logger.js';
import type { SharedStateSizes } from '../shared/shared-state.js';

/** What a worker needs to answer clients itself (absent with `-n 0`). */
export interface FastPathSettings {
  /** This worker's activity record in shared memory (shared/worker-activity.ts). */
  readonly place: number;
  /** `-r` */
  readonly appendRealm: boolean;
  /** `--max-jobs-per-worker` (0 = no limit). */
  readonly maxJobs: number;
  /** `--max-connections`: while the primary holds this many, clients go to it (it refuses them). */
  readonly maxConnections: number;
  /** How the shared region is laid out (inherited as SHARED_REGION_FD). */
  readonly shared: SharedStateSizes;
}

export interface WorkerSettings {
  readonly mechanism: string;
  readonly mechOption: string | undefined;
  /** `--job-timeout`, handed to the mechanism (MechanismOptions.jobTimeoutMs). */
  readonly jobTimeoutMs?: number;
  readonly verbose: boolean;
  readonly logFormat: LogFormat;
  readonly fastPath?: FastPathSettings;
}

export function serializeWorkerSettings(settings: WorkerSettings): string {
  return JSON.stringify(settings);
}

export function parseWorkerSettings(text: string | undefined): WorkerSettings {
  if (!text) throw new Error('worker started without settings (it is started by the saslauthd primary)');
  const parsed = JSON.parse(text) as Partial<WorkerSettings>;
  if (typeof parsed.mechanism !== 'string') throw new Error('worker settings lack a mechanism');
  return {
    mechanism: parsed.mechanism,
    mechOption: typeof parsed.mechOption === 'string' ? parsed.mechOption : undefined,
    ...(typeof parsed.jobTimeoutMs === 'number' ? { jobTimeoutMs: parsed.jobTimeoutMs } : {}),
    verbose: parsed.verbose === true,
    logFormat: parsed.logFormat === 'foreground' || parsed.logFormat === 'json' ? parsed.logFormat : 'journal',
    ...(parsed.fastPath && typeof parsed.fastPath.place === 'number' ? { fastPath: parsed.fastPath } : {}),
  };
}
