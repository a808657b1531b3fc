/**
 * How the daemon starts another copy of itself: the detached daemon (daemonize.ts) and the
 * worker processes (worker-process.ts).
 *
 * Two ways to run:
 *   - plain Node (`node dist/src/cli/saslauthd.js …`): the copy is `node <script> …`;
 *   - the Debian package's /usr/sbin/saslauthd, a Node single executable application (SEA,
 *     see src/native/sea-main.cts): process.execPath *is* /usr/sbin/saslauthd and the binary
 *     always runs its built-in entry point, ignoring a script argument. The copy is then
 *     `/usr/sbin/saslauthd …` with SASLAUTHD_TS_ENTRY naming which part to run, so that
 *     /proc/PID/exe of every process is /usr/sbin/saslauthd (start-stop-daemon --exec).
 *     On Debian 13 /usr/sbin/saslauthd is instead a small launcher linked to libnode
 *     (debian/saslauthd-launcher.cc) that always runs the same entry script: the same rule
 *     applies, and the entry script says so by setting PACKAGED_ENTRY_MARK.
 */
import { isSea } from 'node:sea';

/** Environment variable telling the SEA entry point which part to run (read and removed there). */
export const ENTRY_VARIABLE = 'SASLAUTHD_TS_ENTRY';

/** The parts of the program a process can be started as. */
export type SelfEntry = 'saslauthd' | 'worker';

export interface SelfCommand {
  readonly command: string;
  readonly args: string[];
  /** Variables to add to the child's environment. */
  readonly env: Record<string, string>;
}

/** Set to true on globalThis by the package's entry script (debian/sea-main.cjs). */
export const PACKAGED_ENTRY_MARK = Symbol.for('saslauthd-ts.packaged-entry');

/**
 * True when running as the packaged /usr/sbin/saslauthd: a single executable application
 * (Debian 12) or the libnode launcher (Debian 13), whose entry point picks the part to run.
 */
export function runningAsSea(): boolean {
  if ((globalThis as Record<symbol, unknown>)[PACKAGED_ENTRY_MARK] === true) return true;
  try {
    return isSea();
  } catch {
    return false;
  }
}

/** The command that runs `entry` (compiled to `script`) with `args` in a new process. */
export function selfCommand(entry: SelfEntry, script: string, args: readonly string[]): SelfCommand {
  if (runningAsSea()) return { command: process.execPath, args: [...args], env: { [ENTRY_VARIABLE]: entry } };
  return { command: process.execPath, args: [script, ...args], env: {} };
}
