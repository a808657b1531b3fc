/**
 * Shuts the doors the Node runtime opens by itself in a process that runs as root. Every
 * entry point (cli/saslauthd.ts, workers/worker-main.ts) imports this module FIRST, so its
 * body runs before any other module of ours is evaluated:
 *
 *  - SIGUSR1: Node's own handler starts the inspector (a debugger on 127.0.0.1:9229 that
 *    runs any code it is sent, as root). Installing a JS listener replaces that handler, so
 *    from here on SIGUSR1 never reaches it. Node 20 has no `--disable-sigusr1` (22.14+):
 *    the few milliseconds of Node's own bootstrap before this line stay covered only by
 *    the check below, which closes an inspector found open.
 *  - An inspector opened by `--inspect*` or by a SIGUSR1 during bootstrap is closed, here and
 *    again once the event loop runs and when the real handlers are installed (one started
 *    by a late bootstrap signal may only open after this module ran).
 *  - SIGHUP, SIGTERM, SIGINT, SIGUSR2: their default action (the process dies, without
 *    clean-up) never fires: until the process installs its real handlers
 *    (takeOverSignals), a signal is only remembered, and replayed once they exist.
 *  - Listeners Node installed for diagnostics on any signal (`--heapsnapshot-signal`,
 *    `--report-on-signal`, reachable through NODE_OPTIONS) are removed, and diagnostic
 *    reports (which write the environment and command line to a file) are switched off.
 *  - `NODE_OPTIONS` and every other `NODE_*` variable are removed from this process's
 *    environment, so nothing it starts (workers, the detached daemon, programs PAM
 *    modules run) loads code, flags or settings through them. (self-exec.ts builds the
 *    children's environment from the cleaned one and strips them again.)
 *  - `process.binding` (direct access to Node's internal bindings, deprecated) throws.
 */
import inspector from 'node:inspector';
import { keepYoungGenerationSmall } from './young-generation.js';

/** Signals whose default action would kill or expose the process. */
export const GUARDED_SIGNALS = ['SIGUSR1', 'SIGUSR2', 'SIGHUP', 'SIGTERM', 'SIGINT'] as const;
export type GuardedSignal = (typeof GUARDED_SIGNALS)[number];

const pending: GuardedSignal[] = [];
const earlyListeners = new Map<GuardedSignal, () => void>();

for (const signal of GUARDED_SIGNALS) {
  const remember = (): void => {
    if (!pending.includes(signal)) pending.push(signal);
  };
  earlyListeners.set(signal, remember);
  process.on(signal, remember); // first ours, so the signal is never without a handler…
}
// …then every listener that is not ours: diagnostics from NODE_OPTIONS, on any signal.
for (const name of process.eventNames()) {
  if (typeof name !== 'string' || !name.startsWith('SIG')) continue;
  const ours = earlyListeners.get(name as GuardedSignal);
  for (const listener of process.listeners(name as NodeJS.Signals)) {
    if (listener !== ours) process.removeListener(name as NodeJS.Signals, listener as () => void);
  }
}

closeInspector();
setImmediate(closeInspector);

if (process.report) {
  process.report.reportOnSignal = false;
  process.report.reportOnFatalError = false;
  process.report.reportOnUncaughtException = false;
}

for (const name of Object.keys(process.env)) if (isNodeVariable(name)) delete process.env[name];

Object.defineProperty(process, 'binding', {
  configurable: false,
  writable: false,
  value: () => {
    throw new Error('process.binding is disabled in saslauthd');
  },
});

// Not a door: memory. This module is what runs first in every process of the daemon (the
// workers included), so the young generation keeps its start size from here on.
keepYoungGenerationSmall();

/** `NODE_OPTIONS`, `NODE_PATH`, `NODE_TLS_REJECT_UNAUTHORIZED`, … — any variable Node reads. */
export function isNodeVariable(name: string): boolean {
  return name.startsWith('NODE_');
}

/** Closes the inspector if anything opened it. */
function closeInspector(): void {
  if (inspector.url() !== undefined) inspector.close();
}

/**
 * Installs the process's real handlers for the signals named in `handlers` (the others stay
 * remembered-and-ignored), then replays those that arrived before, in arrival order. The
 * new listener is added before the early one is removed: the OS-level handler is never
 * reset to the default in between.
 */
export function takeOverSignals(handlers: Partial<Record<GuardedSignal, () => void>>): void {
  closeInspector();
  const replay: (() => void)[] = [];
  for (const signal of GUARDED_SIGNALS) {
    const handler = handlers[signal];
    if (!handler) continue;
    process.on(signal, handler);
    const early = earlyListeners.get(signal);
    if (early) process.removeListener(signal, early);
    earlyListeners.delete(signal);
  }
  for (const signal of [...pending]) {
    const handler = handlers[signal];
    if (!handler) continue;
    pending.splice(pending.indexOf(signal), 1);
    replay.push(handler);
  }
  for (const handler of replay) handler();
}

/** Signals received before their real handler existed and not replayed yet (for tests and logs). */
export function pendingSignals(): readonly GuardedSignal[] {
  return [...pending];
}
