/**
 * The run directory (`-m`) and the files the daemon keeps in it, named as the original's:
 * `mux` (the socket), `saslauthd.pid` (the primary's pid, "%d\n"), and
 * `saslauthd.pid.lock` (the instance lock: a file held with flock(2) for the daemon's life).
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface RunFiles {
  readonly directory: string;
  readonly socket: string;
  readonly pidFile: string;
  readonly lock: string;
}

export function runFiles(directory: string): RunFiles {
  return {
    directory,
    socket: join(directory, 'mux'),
    pidFile: join(directory, 'saslauthd.pid'),
    lock: join(directory, 'saslauthd.pid.lock'),
  };
}

/**
 * Creates the run directory if it is missing (only its last component, mode 0755 before
 * umask, as the original: Debian's init script or the package makes it root:sasl 0710).
 * Throws an Error carrying the original's message on failure.
 */
export function ensureRunDirectory(directory: string): void {
  try {
    mkdirSync(directory, { mode: 0o755 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(directory).isDirectory()) return;
    throw new StartupError(
      [
        `can not mkdir: ${directory}: ${(error as Error).message}`,
        'Check to make sure the parent directory exists and is',
        'writeable by the user this process runs as.',
      ],
      1,
    );
  }
}

/** The original's two lines when another daemon serves the run directory (exit status 2). */
export const ALREADY_RUNNING = ['Cannot start saslauthd', 'Another instance of saslauthd is currently running'];

/** A startup failure: the lines to print and the exit status. */
export class StartupError extends Error {
  constructor(
    readonly lines: readonly string[],
    readonly exitCode: number,
  ) {
    super(lines.join('; '));
  }
}
