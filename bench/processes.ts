/** What the benchmark reads about a daemon's processes, from /proc: the tree, memory, CPU time. */
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

interface StatFields {
  readonly ppid: number;
  readonly cpuTicks: number;
}

function readStat(pid: number): StatFields | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // fields after the command (which may contain spaces) start after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined; // the process ended while we looked
  }
}

/** `root` and all its live descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(Number(entry));
    children.set(stat.ppid, siblings);
  }
  const tree: number[] = [];
  const pending = readStat(root) ? [root] : [];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    tree.push(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return tree;
}

export interface Memory {
  /** Sum of VmRSS: what `ps` shows, shared pages counted once per process. */
  readonly rssMb: number;
  /** Sum of Pss: shared pages divided among the processes that map them. */
  readonly pssMb: number;
  /** Pss of each process, in the order of the pids given. */
  readonly pssMbEach: number[];
}

function kbField(text: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

export function memoryOf(pids: readonly number[]): Memory {
  let rssKb = 0;
  const pssKbEach: number[] = [];
  for (const pid of pids) {
    try {
      rssKb += kbField(readFileSync(`/proc/${pid}/status`, 'latin1'), 'VmRSS');
      pssKbEach.push(kbField(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'), 'Pss'));
    } catch {
      pssKbEach.push(0); // ended meanwhile
    }
  }
  const pssKb = pssKbEach.reduce((sum, kb) => sum + kb, 0);
  return { rssMb: rssKb / 1024, pssMb: pssKb / 1024, pssMbEach: pssKbEach.map((kb) => kb / 1024) };
}

/** CPU seconds (user + system) used so far by these processes. */
export function cpuSecondsOf(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / TICKS_PER_SECOND;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return readStat(pid) !== undefined;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
