/**
 * How the daemon starts another copy of itself: the detached daemon (daemonize.ts) and the
 * worker processes (worker-process.ts).
 *
 * Two ways to run:
 *   - plain Node (`node dist/src/cli/saslauthd.js …`): the copy is `node <script> …`;
 *   - the Debian package's /usr/sbin/saslauthd, a Node single executable application (SEA,
 *     see debian/sea-main.cjs): process.execPath *is* /usr/sbin/saslauthd and the binary
 *     always runs its built-in entry point, ignoring a script argument. The copy is then
 *     `/usr/sbin/saslauthd …` with SASLAUTHD_TS_ENTRY naming which part to run, so that
 *     /proc/PID/exe of every process is /usr/sbin/saslauthd (start-stop-daemon --exec).
 *     On Debian 13 /usr/sbin/saslauthd is instead a small launcher linked to libnode
 *     (debian/saslauthd-launcher.cc) that always runs the same entry script: the same rule
 *     applies, and the entry script says so by setting PACKAGED_ENTRY_MARK.
 */
import { isSea } from 'node:sea';
import { isNodeVariable } from '../runtime/harden-process.js';

/** Environment variable telling the SEA entry point which part to run (read and removed there). */
export const ENTRY_VARIABLE = 'SASLAUTHD_TS_ENTRY';

/** The parts of the program a process can be started as. */
export type SelfEntry = 'saslauthd' | 'worker';

export interface SelfCommand {
  readonly command: string;
  readonly args: string[];
  /** The child's whole environment: ours without any `NODE_*` variable, plus the entry. */
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
export function selfCommand(
  entry: SelfEntry,
  script: string,
  args: readonly string[],
  extraEnv: Readonly<Record<string, string>> = {},
): SelfCommand {
  const env = { ...childEnvironment(), ...extraEnv };
  if (runningAsSea()) return { command: process.execPath, args: [...args], env: { ...env, [ENTRY_VARIABLE]: entry } };
  return { command: process.execPath, args: [...RUNTIME_FLAGS, script, ...args], env };
}

/**
 * Node flags for copies started as `node <script>`: `--disable-sigusr1` where this Node
 * has it (22.14+), which shuts the inspector's signal door before Node's own bootstrap,
 * not only from our first module on (runtime/harden-process.ts).
 */
const RUNTIME_FLAGS: readonly string[] = process.allowedNodeEnvironmentFlags.has('--disable-sigusr1') ? ['--disable-sigusr1'] : [];

/** systemd's socket-activation variables: they describe this process's descriptors only. */
const ACTIVATION_VARIABLES: ReadonlySet<string> = new Set(['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']);

/**
 * The environment every process the daemon starts gets: ours, without `NODE_OPTIONS` or any
 * other `NODE_*` variable (harden-process.ts removed them at start; this is the second lock
 * on the same door, should anything have set one since), and without systemd's
 * `LISTEN_*` (workers may start before the listener has taken them).
 */
export function childEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !isNodeVariable(name) && !ACTIVATION_VARIABLES.has(name)) env[name] = value;
  }
  return env;
}
