/**
 * A real Debian 13 (trixie) system for the package tests (root; CI is Debian 12 without
 * systemd as PID 1):
 *
 *  - trixieRoot(): a root made with debootstrap from the Debian mirror apt uses here, with
 *    sasl2-bin, sendmail, and what the package's build needs (trixie's own dpkg-dev,
 *    debhelper, nodejs, npm, libnode-dev, g++). Kept in /var/cache/saslauthd-ts-tests and
 *    made afresh when missing or when the package list changes.
 *  - trixieDeb(): the package built inside that root (non-booted systemd-nspawn, trixie's
 *    npm ci against the registry, dpkg-buildpackage), cached by content like debPackage().
 *  - TrixieMachine: an overlay of the root (the cache stays as made) booted with
 *    `systemd-nspawn -b` on a private network (its own loopback: sendmail's port 25 is its
 *    own); commands run inside with nsenter into the container's init.
 *
 * nspawn runs with --register=no --keep-unit: this machine's PID 1 is not systemd and there
 * is no D-Bus to register with.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveProcesses, eventually } from './processes.js';
import { packagedContentKey, sourceFiles } from './debian-package.js';
import { REPO_ROOT } from './paths.js';

export const TESTS_CACHE = '/var/cache/saslauthd-ts-tests';
const ROOT_CACHE = join(TESTS_CACHE, 'trixie-root');
const DEB_CACHE = join(TESTS_CACHE, 'trixie-deb');
/** Written last into a finished root: its content is the package list it was made with. */
const ROOT_MARK = '.saslauthd-ts-root';
/** The host's CA bundle, for npm in the container (the host may sit behind a TLS proxy). */
const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** debootstrap and apt on a fresh machine (measured ~1 min each here; generous for CI). */
const ROOT_DEADLINE_MS = 20 * 60_000;
const BUILD_DEADLINE_MS = 15 * 60_000;
/** Boot to `running`: ~6 s here. */
const BOOT_DEADLINE_MS = 90_000;
const COMMAND_DEADLINE_MS = 180_000;

/** In the root besides minbase: boot, the stock daemon and the seed's MTA, the build's tools. */
const PACKAGES = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'sasl2-bin',
  'libpam-modules',
  'libpam-runtime',
  'passwd',
  'procps',
  'sendmail-bin',
  'sendmail-cf',
  'm4',
  'make',
  'libsasl2-modules',
  'swaks',
  'openssl',
  'ca-certificates',
  'build-essential',
  'dpkg-dev',
  'debhelper',
  'nodejs',
  'npm',
  'libnode-dev',
  'lintian',
  // a Build-Depends of the package (used on Debian 12 only, see debian/build-sea)
  'patchelf',
];

export interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runHost(command: string, args: readonly string[], timeout = COMMAND_DEADLINE_MS): Result {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? (result.error ? String(result.error) : '') };
}

function mustRun(what: string, command: string, args: readonly string[], timeout?: number): Result {
  const result = runHost(command, args, timeout);
  if (result.status !== 0) throw new Error(`${what} failed (${result.status}):\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`);
  return result;
}

/** The Debian archive apt uses on this machine (deb822 URIs: or one-line deb entries). */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list'];
  const directory = '/etc/apt/sources.list.d';
  if (existsSync(directory)) for (const name of readdirSync(directory).sort()) files.push(join(directory, name));
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const uris = [...text.matchAll(/^\s*(?:URIs:|deb(?:\s+\[[^\]]*\])?)\s+(\S+)/gm)].map((match) => match[1]!);
    const debian = uris.find((uri) => /\/debian\/?$/.test(uri));
    if (debian) return debian;
  }
  return 'http://deb.debian.org/debian';
}

/** Non-booted nspawn in `root` (build steps, package installs into the cached root). */
function nspawnRun(root: string, script: string, extra: readonly string[] = [], timeout = COMMAND_DEADLINE_MS): Result {
  return runHost(
    'systemd-nspawn',
    ['--register=no', '--keep-unit', '--quiet', '-D', root, '--setenv=DEBIAN_FRONTEND=noninteractive', ...extra, 'sh', '-ec', script],
    timeout,
  );
}

/** The cached trixie root, made when missing or made with another package list. */
export function trixieRoot(): string {
  const wanted = PACKAGES.join('\n');
  const mark = join(ROOT_CACHE, ROOT_MARK);
  if (existsSync(mark) && readFileSync(mark, 'utf8') === wanted) return ROOT_CACHE;
  mkdirSync(TESTS_CACHE, { recursive: true });
  const making = `${ROOT_CACHE}.new`;
  rmSync(making, { recursive: true, force: true });
  mustRun('debootstrap', 'debootstrap', ['--variant=minbase', '--include=systemd,systemd-sysv,dbus', 'trixie', making, debianMirror()], ROOT_DEADLINE_MS);
  // No service starts during the installs (no init runs here anyway; sendmail's scripts try).
  const install = nspawnRun(
    making,
    `printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
apt-get update -qq
apt-get install -y -qq --no-install-recommends ${PACKAGES.join(' ')} >/dev/null
apt-get clean
# sasl2-bin's .deb stays in apt's cache: the booted container has no network, and the tests
# reinstall it from there.
apt-get install -y -qq --reinstall --download-only sasl2-bin >/dev/null
rm -f /usr/sbin/policy-rc.d`,
    [],
    ROOT_DEADLINE_MS,
  );
  if (install.status !== 0) throw new Error(`installing the trixie packages failed:\n${install.stdout}\n${install.stderr}`);
  writeFileSync(join(making, ROOT_MARK), wanted);
  rmSync(ROOT_CACHE, { recursive: true, force: true });
  renameSync(making, ROOT_CACHE);
  return ROOT_CACHE;
}

/** A writable view of the cached root: an overlay whose changes go to `scratch`. */
export class Overlay {
  private constructor(readonly path: string) {}

  static mount(lower: string, scratch: string): Overlay {
    const [upper, work, merged] = ['upper', 'work', 'merged'].map((name) => join(scratch, name));
    for (const directory of [upper!, work!, merged!]) mkdirSync(directory, { recursive: true });
    mustRun('mount overlay', 'mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged!]);
    return new Overlay(merged!);
  }

  unmount(): void {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (runHost('umount', [this.path]).status === 0) return;
      spawnSync('sleep', ['1']);
    }
    runHost('umount', ['-l', this.path]);
  }
}

/** The package built on trixie with trixie's tools, from this checkout (cached by content). */
export function trixieDeb(): string {
  const given = process.env['SASLAUTHD_TS_TRIXIE_DEB'];
  if (given) return given;
  const files = sourceFiles();
  const key = packagedContentKey(files);
  const directory = join(DEB_CACHE, key);
  const built = existsSync(directory) ? readdirSync(directory).find((name) => name.endsWith('.deb')) : undefined;
  if (built) return join(directory, built);
  const root = trixieRoot();
  const scratch = join(TESTS_CACHE, `trixie-build-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const overlay = Overlay.mount(root, scratch);
  try {
    const source = join(overlay.path, 'root/src');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(scratch, 'files'), files.filter((file) => !file.startsWith('node_modules/')).join('\0'));
    mustRun('copying the sources', 'sh', ['-c', 'tar -C "$1" --null -T "$2" -cf - | tar -C "$3" -xf -', 'copy', REPO_ROOT, join(scratch, 'files'), source]);
    const build = nspawnRun(
      overlay.path,
      `cd /root/src
npm ci --no-audit --no-fund --ignore-scripts >/root/npm.log 2>&1 || { tail -30 /root/npm.log; exit 1; }
dpkg-buildpackage -b -us -uc >/root/build.log 2>&1 || { tail -60 /root/build.log; exit 1; }`,
      [`--bind-ro=${HOST_CA_BUNDLE}:/run/host-ca.crt`, '--setenv=npm_config_cafile=/run/host-ca.crt'],
      BUILD_DEADLINE_MS,
    );
    if (build.status !== 0) throw new Error(`the trixie build failed:\n${build.stdout}\n${build.stderr}`);
    const deb = readdirSync(join(overlay.path, 'root')).find((name) => name.endsWith('.deb'));
    if (!deb) throw new Error('the trixie build made no .deb');
    mkdirSync(directory, { recursive: true });
    writeFileSync(join(directory, deb), readFileSync(join(overlay.path, 'root', deb)));
    writeFileSync(join(directory, 'build.log'), readFileSync(join(overlay.path, 'root/build.log')));
    for (const entry of readdirSync(DEB_CACHE)) if (entry !== key) rmSync(join(DEB_CACHE, entry), { recursive: true, force: true });
    return join(directory, deb);
  } finally {
    overlay.unmount();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The container's init: the descendant of systemd-nspawn whose pid in its own namespace is 1. */
function containerInit(nspawnPid: number): number | undefined {
  const table = liveProcesses();
  const descendants = new Set([nspawnPid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const { pid, ppid } of table) {
      if (descendants.has(ppid) && !descendants.has(pid)) {
        descendants.add(pid);
        grew = true;
      }
    }
  }
  for (const pid of descendants) {
    try {
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1]?.trim().split(/\s+/);
      if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === '1') return pid;
    } catch {
      // gone
    }
  }
  return undefined;
}

/** A booted trixie: systemd 257 as PID 1 of its own namespaces, on an overlay of the root. */
export class TrixieMachine {
  private constructor(
    readonly overlay: Overlay,
    private readonly nspawn: ChildProcess,
    readonly initPid: number,
    private readonly output: () => string,
  ) {}

  /** The container's / seen from here (files may be read and written through it). */
  get root(): string {
    return this.overlay.path;
  }

  static async boot(scratch: string): Promise<TrixieMachine> {
    const overlay = Overlay.mount(trixieRoot(), scratch);
    const nspawn = spawn(
      'systemd-nspawn',
      ['--register=no', '--keep-unit', '--private-network', '--console=pipe', '-q', '-D', overlay.path, '-b'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    nspawn.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
    nspawn.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
    let init: number | undefined;
    try {
      await eventually(() => (init = containerInit(nspawn.pid!)) !== undefined || nspawn.exitCode !== null, 'the container starts', BOOT_DEADLINE_MS);
      if (init === undefined) throw new Error(`systemd-nspawn ended (${nspawn.exitCode}):\n${output}`);
      const machine = new TrixieMachine(overlay, nspawn, init, () => output);
      await eventually(
        () => /^(running|degraded)$/m.test(machine.run('systemctl', 'is-system-running').stdout),
        `the container boots:\n${output}`,
        BOOT_DEADLINE_MS,
      );
      return machine;
    } catch (error) {
      nspawn.kill('SIGKILL');
      await new Promise((resolve) => (nspawn.exitCode !== null ? resolve(undefined) : nspawn.on('exit', resolve)));
      overlay.unmount();
      throw error;
    }
  }

  /** Runs a command in the container (its namespaces and root), with a clean environment. */
  run(command: string, ...args: string[]): Result {
    return this.runWithInput(undefined, command, ...args);
  }

  runWithInput(input: string | undefined, command: string, ...args: string[]): Result {
    const result = spawnSync(
      'nsenter',
      ['-t', String(this.initPid), '-a', 'env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', command, ...args],
      { encoding: 'utf8', timeout: COMMAND_DEADLINE_MS, maxBuffer: 64 << 20, ...(input === undefined ? {} : { input }) },
    );
    return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? (result.error ? String(result.error) : '') };
  }

  /** A shell script in the container. */
  sh(script: string): Result {
    return this.run('sh', '-c', script);
  }

  /** What systemd-nspawn printed (the console), for failure messages. */
  console(): string {
    return this.output();
  }

  /** Powers the container off (SIGKILL after a deadline) and unmounts the overlay. */
  async stop(): Promise<void> {
    if (this.nspawn.exitCode === null) {
      this.nspawn.kill('SIGTERM'); // nspawn asks the container's systemd to power off
      const exited = new Promise((resolve) => this.nspawn.on('exit', resolve));
      const deadline = new Promise((resolve) => setTimeout(resolve, 30_000).unref());
      await Promise.race([exited, deadline]);
      if (this.nspawn.exitCode === null) {
        this.nspawn.kill('SIGKILL');
        await exited;
      }
    }
    this.overlay.unmount();
  }
}
