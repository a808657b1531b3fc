/**
 * One daemon per run directory: an exclusive flock(2) on `saslauthd.pid.lock`, taken before
 * anything else in the run directory is touched and held for the daemon's whole life. The
 * kernel releases it when the primary exits, however it exits, so a daemon restarted right
 * after a crash starts at once, and a running daemon's lock can never be judged stale (the
 * mtime-based lock this replaces let a failed second start delete a live daemon's pid file
 * and lock).
 *
 * Only the holder writes `saslauthd.pid`, and only once its socket is up (announce()): a
 * start that finds the lock held, or another daemon answering on the socket (the C daemon
 * locks other files), exits 2 and removes nothing it did not create.
 */
import { closeSync, fstatSync, openSync, rmdirSync, statSync, unlinkSync, writeFileSync, constants as fs } from 'node:fs';
import { EWOULDBLOCK, tryExclusiveLock } from '../native/file-lock.js';
import { socketAnswers } from './listener.js';
import { errnoName } from '../native/posix-sockets.js';
import type { RunFiles } from './run-directory.js';
import { ALREADY_RUNNING, StartupError } from './run-directory.js';


/**
 * Rounds of open → lock → "is it still the file at that path?". A second round happens
 * only when the holder removed the file between our open and our lock (it was stopping).
 */
const LOCK_ROUNDS = 5;

export interface InstanceLock {
  /** Writes `saslauthd.pid`: this daemon serves the run directory now. */
  announce(): void;
  /**
   * Removes the pid file (if announced) and the lock file (if announced or created by this
   * start), then drops the lock. Synchronous: done when it returns.
   */
  release(): void;
}

export async function acquireInstanceLock(files: RunFiles): Promise<InstanceLock> {
  for (let round = 0; round < LOCK_ROUNDS; round++) {
    const { fd, created } = await openLockFile(files);
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
    return holding(fd, created, files);
  }
  throw new StartupError([`could not lock pid lock file: ${files.lock} keeps being replaced`], 1);
}

function holding(fd: number, created: boolean, files: RunFiles): InstanceLock {
  let held = true;
  let announced = false;
  return {
    announce(): void {
      writeFileSync(files.pidFile, `${process.pid}\n`, { mode: 0o600 });
      announced = true;
    },
    release(): void {
      if (!held) return;
      held = false;
      if (announced) removeIfPresent(files.pidFile);
      // Removed while still locked: a start that opened it a moment ago finds, once it gets
      // the lock, that the path holds another file (or none), and locks that one instead.
      if ((announced || created) && isFileAtPath(fd, files.lock)) removeIfPresent(files.lock);
      closeSync(fd);
    },
  };
}

/**
 * Opens the lock file, creating it (mode 0600) if needed, and says whether this start
 * created it. A directory in its place is the lock of saslauthd-ts 0.1.0 (proper-lockfile):
 * if no daemon answers on the socket it is left over, and replaced by the file; if one
 * answers, that daemon is running and this start exits 2 without touching it.
 */
async function openLockFile(files: RunFiles): Promise<{ fd: number; created: boolean }> {
  const path = files.lock;
  const open = (): { fd: number; created: boolean } => {
    try {
      return { fd: openSync(path, fs.O_RDWR | fs.O_CREAT | fs.O_EXCL | fs.O_NOFOLLOW, 0o600), created: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return { fd: openSync(path, fs.O_RDWR | fs.O_NOFOLLOW), created: false };
    }
  };
  try {
    return open();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') {
      if (await socketAnswers(files.socket)) throw new StartupError(ALREADY_RUNNING, 2);
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
