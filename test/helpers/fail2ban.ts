/**
 * fail2ban-regex over syslog lines a test captured (private /dev/log, dgram-listener.ts):
 * the datagrams written as rsyslog writes auth.log, the shipped filter beside fail2ban's
 * common.conf, and the matches read back one per line.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

/** The filter the package installs as /etc/fail2ban/filter.d/saslauthd-ts.conf. */
export const SHIPPED_FILTER = join(REPO_ROOT, 'fail2ban', 'saslauthd-ts.conf');
/** Debian's fail2ban filters. */
export const FAIL2BAN_FILTERS = '/etc/fail2ban/filter.d';
const TOOL_DEADLINE_MS = 60_000;

/** `<PRI>Mmm dd hh:mm:ss ident[PID]: text` → `Mmm dd hh:mm:ss testhost ident[PID]: text` */
export function asAuthLogLine(datagram: string): string | undefined {
  const match = /^<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+\[\d+\]: .*)$/s.exec(datagram);
  return match ? `${match[1]} testhost ${match[2]!.replace(/\n$/, '')}` : undefined;
}

/** Writes the datagrams as an auth.log file in `directory`; returns its path. */
export function writeAuthLog(directory: string, datagrams: readonly string[]): string {
  const path = join(directory, 'auth.log');
  const lines = datagrams.map(asAuthLogLine).filter((line): line is string => line !== undefined);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/**
 * A filter.d in `directory` holding our filter and a link to fail2ban's common.conf (which
 * `before = common.conf` resolves beside the filter); returns our filter's path.
 */
export function installShippedFilter(directory: string): string {
  const filters = join(directory, 'filter.d');
  mkdirSync(filters);
  symlinkSync(join(FAIL2BAN_FILTERS, 'common.conf'), join(filters, 'common.conf'));
  const filter = join(filters, 'saslauthd-ts.conf');
  copyFileSync(SHIPPED_FILTER, filter);
  return filter;
}

/** fail2ban-regex's matches, one value per line (`--out ip|id|msg`); throws if it fails. */
export function fail2banRegex(logFile: string, filterSpec: string, out: 'ip' | 'id' | 'msg'): string[] {
  const result = spawnSync('fail2ban-regex', ['--out', out, logFile, filterSpec], { encoding: 'utf8', timeout: TOOL_DEADLINE_MS });
  if (result.status !== 0) throw new Error(`fail2ban-regex ${filterSpec} exited ${result.status}: ${result.stderr}`);
  return result.stdout.split('\n').filter((line) => line.length > 0);
}
