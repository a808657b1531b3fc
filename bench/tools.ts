/**
 * The C tools of the benchmark, compiled at bench time with the system gcc: the load
 * generator (loadgen.c) and the floor server (floor-server.c). Node would be the bottleneck
 * as a client on 2 cores; a C client with blocking calls per request is what libsasl2 is.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SOURCE_DIR = fileURLToPath(new URL('../../bench/', import.meta.url));
const BIN_DIR = fileURLToPath(new URL('./bin/', import.meta.url));

export interface Tools {
  readonly loadgen: string;
  readonly floorServer: string;
}

function compile(source: string, output: string, extra: readonly string[]): string {
  const sourcePath = `${SOURCE_DIR}${source}`;
  const outputPath = `${BIN_DIR}${output}`;
  let fresh = false;
  try {
    fresh = statSync(outputPath).mtimeMs >= statSync(sourcePath).mtimeMs;
  } catch {
    // not built yet
  }
  if (!fresh) execFileSync('gcc', ['-O2', '-Wall', '-o', outputPath, sourcePath, ...extra], { stdio: 'inherit' });
  return outputPath;
}

export function buildTools(): Tools {
  mkdirSync(BIN_DIR, { recursive: true });
  return {
    loadgen: compile('loadgen.c', 'loadgen', ['-pthread']),
    floorServer: compile('floor-server.c', 'floor-server', []),
  };
}

export interface LoadSpec {
  readonly socket: string;
  readonly clients: number;
  readonly warmupSeconds: number;
  readonly seconds: number;
  readonly login: string;
  readonly password: string;
  readonly service: string;
  readonly expect: string;
  /** Distinct users: login<i>/password<i> for i in [0, users). */
  readonly users?: number;
  /** A guesser: the same login, a new password<n> for every request. */
  readonly guesses?: boolean;
  /** Connections held open, sending nothing, during the run. */
  readonly idle?: number;
  readonly timeoutMs?: number;
}

/** What loadgen prints (see loadgen.c). */
export interface LoadResult {
  readonly requests: number;
  readonly ok: number;
  readonly no: number;
  readonly errors: number;
  readonly mismatches: number;
  readonly seconds: number;
  /** From the window's start until the last request started in it was answered. */
  readonly drained_seconds: number;
  readonly rps: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  readonly cpu_seconds: number;
  readonly idle_held: number;
  readonly first_mismatch: string;
  readonly first_error: string;
}

export function runLoad(tools: Tools, spec: LoadSpec): Promise<LoadResult> {
  const args = [
    ['--socket', spec.socket],
    ['--clients', spec.clients],
    ['--warmup', spec.warmupSeconds],
    ['--duration', spec.seconds],
    ['--login', spec.login],
    ['--password', spec.password],
    ['--service', spec.service],
    ['--realm', ''],
    ['--expect', spec.expect],
    ['--users', spec.users ?? 0],
    ['--guesses', spec.guesses ? 1 : 0],
    ['--idle', spec.idle ?? 0],
    ['--timeout-ms', spec.timeoutMs ?? 5000],
  ].flatMap(([key, value]) => [String(key), String(value)]);
  return new Promise((resolve, reject) => {
    const child = spawn(tools.loadgen, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`loadgen exited with ${code}`));
      else resolve(JSON.parse(output) as LoadResult);
    });
  });
}
