/**
 * Helpers for tests that install the Debian package on this machine (root, CI): running
 * dpkg/apt with maintainer scripts allowed to start and stop services, the daemons that run
 * from /usr/sbin/saslauthd, and putting back what a test changed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveProcesses } from './processes.js';

export const SBIN_SASLAUTHD = '/usr/sbin/saslauthd';
export const INIT_SCRIPT = '/etc/init.d/saslauthd';
export const DEFAULTS = '/etc/default/saslauthd';
export const POLICY_RC_D = '/usr/sbin/policy-rc.d';

export interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): Result {
  const result = spawnSync(command, args, { encoding: 'utf8', env: env ?? process.env, timeout: 180_000, maxBuffer: 64 << 20 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/**
 * Runs a package command (apt-get, dpkg) so that its maintainer scripts may start and stop
 * services: a container's /usr/sbin/policy-rc.d ("exit 101": start nothing) is shadowed by
 * an allowing one inside a private mount namespace of this command only.
 */
export function runWithServicesAllowed(scratch: string, command: string, args: readonly string[]): Result {
  if (!existsSync(POLICY_RC_D)) return run(command, args);
  const allow = join(scratch, 'policy-rc.d');
  writeFileSync(allow, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return run('unshare', [
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind "$0" /usr/sbin/policy-rc.d && exec "$@"',
    allow,
    command,
    ...args,
  ]);
}

export function isInstalled(pkg: string): boolean {
  const result = run('dpkg-query', ['-W', '-f', '${db:Status-Status}', pkg]);
  return result.status === 0 && result.stdout.trim() === 'installed';
}

export function isKnown(pkg: string): boolean {
  const result = run('dpkg-query', ['-W', '-f', '${db:Status-Status}', pkg]);
  return result.status === 0 && result.stdout.trim() !== 'not-installed' && result.stdout.trim() !== '';
}

interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly exe: string;
}

function processes(): ProcessInfo[] {
  const list: ProcessInfo[] = [];
  for (const { pid, ppid } of liveProcesses()) {
    const exe = exeOf(pid); // undefined: gone, or a kernel thread
    if (exe !== undefined) list.push({ pid, ppid, exe });
  }
  return list;
}

/** Pids of live processes whose /proc/PID/exe is `exe`, and of those, the ones whose parent is not. */
export function daemonProcesses(exe = SBIN_SASLAUTHD): { all: number[]; primaries: number[] } {
  const list = processes().filter((info) => info.exe === exe || info.exe === `${exe} (deleted)`);
  const pids = new Set(list.map((info) => info.pid));
  return { all: list.map((info) => info.pid), primaries: list.filter((info) => !pids.has(info.ppid)).map((info) => info.pid) };
}

export function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

export function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'latin1'), 10);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** A throwaway local user for pam_unix (through PAM's "other" service: common-auth). */
export function addUser(name: string, password: string): void {
  execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', name]);
  execFileSync('chpasswd', [], { input: `${name}:${password}\n` });
}

export function removeUser(name: string): void {
  spawnSync('userdel', [name]);
}

/** The C testsaslauthd's verdict line. */
export function testsaslauthd(user: string, password: string, service: string, socket = '/var/run/saslauthd/mux'): Result {
  return run('/usr/sbin/testsaslauthd', ['-u', user, '-p', password, '-s', service, '-f', socket]);
}

/** True while `pid` runs (a zombie nobody reaped — PID 1 in a container may not — is not running). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
