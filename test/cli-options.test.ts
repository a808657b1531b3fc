/**
 * The command line: parsing like POSIX getopt, the original's validation messages, and
 * `-h` / `-v` output compared with Debian's C saslauthd.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseCommandLine, usageText, versionText } from '../src/cli/options.js';
import { C_SASLAUTHD, SASLAUTHD_JS } from './helpers/paths.js';

function config(argv: string[]) {
  const parsed = parseCommandLine(argv);
  assert.equal(parsed.action, 'run', JSON.stringify(parsed));
  if (parsed.action !== 'run') throw new Error('unreachable');
  return parsed.config;
}

function printed(argv: string[]): { text: string; exitCode: number } {
  const parsed = parseCommandLine(argv);
  assert.equal(parsed.action, 'print');
  if (parsed.action !== 'print') throw new Error('unreachable');
  return parsed;
}

test('defaults: run dir /var/run/saslauthd, 5 workers, no cache, detached, not verbose', () => {
  const c = config(['-a', 'pam']);
  assert.equal(c.mechanism, 'pam');
  assert.equal(c.runDirectory, '/var/run/saslauthd');
  assert.equal(c.workers, 5);
  assert.equal(c.cache.enabled, false);
  assert.equal(c.cache.timeoutSeconds, 28800);
  assert.equal(c.foreground, false);
  assert.equal(c.verbose, false);
  assert.equal(c.appendRealm, false);
});

test('POSIX getopt forms: -n5, -dc, -m/path, -aPAM, any order, stray words ignored', () => {
  const c = config(['-n5', 'stray', '-dc', '-m/tmp/x', '-aPAM', '-r', '-s', '64', '-t30', '-O', 'opt', '-l', '-V']);
  assert.equal(c.workers, 5);
  assert.equal(c.foreground, true);
  assert.equal(c.debugFormat, true);
  assert.equal(c.verbose, true);
  assert.equal(c.cache.enabled, true);
  assert.equal(c.cache.sizeKb, 64);
  assert.equal(c.cache.timeoutSeconds, 30);
  assert.equal(c.runDirectory, '/tmp/x');
  assert.equal(c.mechanism, 'pam');
  assert.equal(c.mechOption, 'opt');
  assert.equal(c.appendRealm, true);
  assert.equal(c.acceptLockDisabled, true);
  assert.equal(config(['-n', '0', '-a', 'pam']).workers, 0);
  assert.equal(config(['-a', 'pam', '-O', 'first', '-O', 'last']).mechOption, 'last');
});

test('-V alone is verbose but still detaches; -f stays in front without verbose', () => {
  const verbose = config(['-a', 'pam', '-V']);
  assert.equal(verbose.verbose, true);
  assert.equal(verbose.foreground, false);
  const front = config(['-a', 'pam', '-f']);
  assert.equal(front.foreground, true);
  assert.equal(front.verbose, false);
  assert.equal(front.debugFormat, false);
});

test('deadline and limit options', () => {
  const c = config(['-a', 'pam', '--read-timeout', '1500', '--job-timeout=900', '--max-queue', '7', '--max-jobs-per-worker', '100']);
  assert.equal(c.deadlines.readTimeoutMs, 1500);
  assert.equal(c.deadlines.jobTimeoutMs, 900);
  assert.equal(c.limits.maxQueuedJobs, 7);
  assert.equal(c.limits.maxJobsPerWorker, 100);
  assert.equal(printed(['-a', 'pam', '--read-timeout', '0']).exitCode, 1);
  assert.equal(printed(['-a', 'pam', '--job-timeout', '3000000000']).exitCode, 1, 'beyond what a timer can wait');
});

test('--idle-workers: all -n workers by default, at most -n, at least 1', () => {
  assert.equal(config(['-a', 'pam', '-n', '4']).idleWorkers, 4);
  assert.equal(config(['-a', 'pam', '-n', '4', '--idle-workers', '2']).idleWorkers, 2);
  assert.equal(config(['-a', 'pam', '-n', '4', '--idle-workers', '9']).idleWorkers, 4);
  assert.equal(config(['-a', 'pam', '--worker-idle-timeout', '5000']).deadlines.workerIdleTimeoutMs, 5000);
  assert.equal(printed(['-a', 'pam', '--idle-workers', '0']).exitCode, 1);
  assert.equal(printed(['-a', 'pam', '--worker-idle-timeout', '0']).exitCode, 1);
});

test("the original's fatal messages, exit 1", () => {
  const cases: [string[], RegExp][] = [
    [['-a', 'pam', '-m', 'relative/dir'], /:-m requires an absolute pathname\n$/],
    [['-a', 'pam', '-n', '-1'], /:invalid number of worker processes defined\n$/],
    [['-a', 'pam', '-n', 'abc'], /:invalid number of worker processes defined\n$/],
    [['-a', 'pam', '-n', '257'], /:invalid number of worker processes defined: at most 256\n$/],
    [['-a', 'pam', '-s', '0'], /:cache size must be positive and non zero\n$/],
    [['-a', 'pam', '-t', '0'], /:cache timeout must be positive\n$/],
  ];
  for (const [argv, message] of cases) {
    const result = printed(argv);
    assert.equal(result.exitCode, 1, argv.join(' '));
    assert.match(result.text, message);
  }
});

test('usage errors: missing -a, unknown option, missing argument, -a twice (usage text, exit 1)', () => {
  const missing = printed(['-d']);
  assert.match(missing.text, /:no authentication mechanism specified\nusage: saslauthd \[options\]/);
  assert.equal(missing.exitCode, 1);
  const unknown = printed(['-a', 'pam', '-T']);
  assert.match(unknown.text, /^saslauthd: invalid option -- 'T'\nusage: saslauthd/);
  assert.equal(unknown.exitCode, 1);
  const noArgument = printed(['-a']);
  assert.match(noArgument.text, /^saslauthd: option requires an argument -- 'a'\n/);
  const twice = printed(['-a', 'pam', '-a', 'shadow']);
  assert.match(twice.text, /^usage: saslauthd/);
  assert.equal(twice.exitCode, 1);
});

test('-h and -v print like the C saslauthd (same text but for the mechanism list and version), exit 0', () => {
  const c = spawnSync(C_SASLAUTHD, ['-h'], { encoding: 'utf8' });
  const ours = spawnSync(process.execPath, [SASLAUTHD_JS, '-h'], { encoding: 'utf8' });
  assert.equal(c.status, 0);
  assert.equal(ours.status, 0);
  const withoutVersion = (text: string) => text.split('\n\nsaslauthd ')[0];
  assert.equal(withoutVersion(ours.stderr), withoutVersion(c.stderr));
  assert.equal(ours.stderr, usageText());

  const version = spawnSync(process.execPath, [SASLAUTHD_JS, '-v'], { encoding: 'utf8' });
  assert.equal(version.status, 0);
  assert.equal(version.stderr, versionText());
  const listed = /^saslauthd 2\.1\.28 \(saslauthd-ts \d+\.\d+\.\d+\)\nauthentication mechanisms: ([a-z0-9 ]+)\n\n$/.exec(version.stderr);
  assert.ok(listed, version.stderr);
  // What this build has, in the C daemon's (Debian's build) table order.
  const names = listed[1]!.split(' ');
  const debianOrder = ['sasldb', 'getpwent', 'kerberos5', 'pam', 'rimap', 'shadow', 'ldap', 'httpform'];
  for (const name of ['sasldb', 'getpwent', 'kerberos5', 'pam', 'rimap', 'shadow', 'httpform']) assert.ok(names.includes(name), `${name} is listed`);
  assert.deepEqual(names, debianOrder.filter((name) => names.includes(name)), 'in Debian\'s order, no unknown name');
});

test('unknown mechanisms and those Debian does not build are refused with the original message, exit 1', () => {
  for (const mechanism of ['nosuch', 'kerberos4', 'DCE']) {
    const result = spawnSync(process.execPath, [SASLAUTHD_JS, '-d', '-a', mechanism, '-m', '/tmp/sts-never-made'], {
      encoding: 'utf8',
    });
    assert.equal(result.status, 1);
    assert.match(result.stderr, new RegExp(`unknown authentication mechanism: ${mechanism.toLowerCase()}`));
  }
});
