/**
 * One daemon per run directory: an exclusive flock(2) on `saslauthd.pid.lock`, taken before
 * anything else in the run directory is touched and held for the daemon's whole life. The
 * kernel releases it when the primary exits, however it exits, so a daemon restarted right
 * after a crash starts at once, and a running daemon's lock can never be judged stale (the
 * mtime-based lock this replaces let a failed second start delete a live daemon's pid file
 * and lock).
 *
 * Only the holder writes `saslauthd.pid` and only the holder removes files: a start that
 * finds the lock held exits 2 and touches nothing.
 */
import { closeSync, fstatSync, openSync, rmdirSync, statSync, unlinkSync, writeFileSync, constants as fs } from 'node:fs';
import { EWOULDBLOCK, tryExclusiveLock } from '../native/file-lock.js';
import { errnoName } from '../native/posix-sockets.js';
import type { RunFiles } from './run-directory.js';
import { StartupError } from './run-directory.js';

export const ALREADY_RUNNING = ['Cannot start saslauthd', 'Another instance of saslauthd is currently running'];

/**
 * Rounds of open → lock → "is it still the file at that path?". A second round happens
 * only when the holder removed the file between our open and our lock (it was stopping).
 */
const LOCK_ROUNDS = 5;

export interface InstanceLock {
  /** Removes the pid file and the lock file, then drops the lock. Synchronous: done when it returns. */
  release(): void;
}

export function acquireInstanceLock(files: RunFiles): InstanceLock {
  for (let round = 0; round < LOCK_ROUNDS; round++) {
    const fd = openLockFile(files.lock);
    const attempt = tryExclusiveLock(fd);
    if (!attempt.locked) {
      closeSync(fd);
      if (attempt.errno === EWOULDBLOCK) throw new StartupError(ALREADY_RUNNING, 2);
      throw new StartupError([`could not lock pid lock file: ${errnoName(attempt.errno)}`], 1);
    }
    if (!isFileAtPath(fd, files.lock)) {
      closeSync(fd); // locked a file its holder removed as it stopped: take the one there now
      continue;
    }
    writeFileSync(files.pidFile, `${process.pid}\n`, { mode: 0o600 });
    return holding(fd, files);
  }
  throw new StartupError([`could not lock pid lock file: ${files.lock} keeps being replaced`], 1);
}

function holding(fd: number, files: RunFiles): InstanceLock {
  let held = true;
  return {
    release(): void {
      if (!held) return;
      held = false;
      removeIfPresent(files.pidFile);
      // Removed while still locked: a start that opened it a moment ago finds, once it gets
      // the lock, that the path holds another file (or none), and locks that one instead.
      if (isFileAtPath(fd, files.lock)) removeIfPresent(files.lock);
      closeSync(fd);
    },
  };
}

/**
 * Opens (creating, mode 0600) the lock file. A directory in its place is the lock of
 * saslauthd-ts 0.1.0 (proper-lockfile): empty unless something else put files there, it is
 * removed and replaced by the file.
 */
function openLockFile(path: string): number {
  const open = (): number => openSync(path, fs.O_RDWR | fs.O_CREAT | fs.O_NOFOLLOW, 0o600);
  try {
    return open();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') {
      try {
        rmdirSync(path);
        return open();
      } catch (again) {
        throw new StartupError([`could not lock pid lock file: ${(again as Error).message}`], 1);
      }
    }
    throw new StartupError([`could not lock pid lock file: ${(error as Error).message}`], 1);
  }
}

function isFileAtPath(fd: number, path: string): boolean {
  try {
    const open = fstatSync(fd);
    const there = statSync(path);
    return open.ino === there.ino && open.dev === there.dev;
  } catch {
    return false;
  }
}

function removeIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
