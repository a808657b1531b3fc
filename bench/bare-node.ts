/**
 * The memory baseline of the target: as many bare Node processes as the daemon has
 * (`node -e 'setTimeout(()=>{},1e9)'`), alive at the same time as the daemon while both are
 * read. Shared pages (the node binary, libc) are divided among every process mapping them,
 * so the daemon's PSS and the baseline's depend on what else runs: read side by side, the
 * ratio is what the run can compare.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { memoryOf, sleep, type Memory } from './processes.js';

/** A Node process that does nothing, for as long as it is needed. */
const IDLE_SCRIPT = 'setTimeout(()=>{},1e9)';
/** Time for the bare processes to finish starting before they are read. */
const SETTLE_MS = 1_000;

export class BareNodes {
  private constructor(private readonly children: ChildProcess[]) {}

  /** Starts `count` bare Node processes and resolves once they have settled. */
  static async start(count: number): Promise<BareNodes> {
    const children = Array.from({ length: count }, () => spawn(process.execPath, ['-e', IDLE_SCRIPT], { stdio: 'ignore' }));
    await sleep(SETTLE_MS);
    return new BareNodes(children);
  }

  memory(): Memory {
    return memoryOf(this.children.map((child) => child.pid!));
  }

  stop(): void {
    for (const child of this.children) child.kill('SIGKILL');
  }
}
