/** Process inspection through /proc (no procps needed). */
import { readFileSync, readdirSync } from 'node:fs';

export interface LiveProcess {
  readonly pid: number;
  readonly ppid: number;
}

/** Every live (not zombie) process, from /proc/PID/stat. */
export function liveProcesses(): LiveProcess[] {
  const list: LiveProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // fields after the command (which may contain spaces) start after the last ')'
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z') list.push({ pid: Number(entry), ppid: Number(fields[1]) });
    } catch {
      // the process ended while we looked
    }
  }
  return list;
}

/** Pids of the live children of `parent`. */
export function childPids(parent: number): number[] {
  return liveProcesses()
    .filter((process) => process.ppid === parent)
    .map((process) => process.pid);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `check` holds, or fails after `timeoutMs`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
