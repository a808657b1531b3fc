/**
 * The Debian package under test, and the machine state the package tests touch.
 *
 * debPackage() builds the .deb once with `dpkg-buildpackage -b -us -uc` from a copy of this
 * checkout (its files as git sees them, plus the node_modules `npm ci` made) in a cache
 * directory keyed by the content, so several test files share one build. .ci/run builds it
 * first and passes it in $SASLAUTHD_TS_DEB.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

export const PACKAGE = 'saslauthd-ts';
export const CACHE_ROOT = '/tmp/saslauthd-ts-deb-cache';
const RELEASED_CACHE = '/var/cache/saslauthd-ts-tests/released';

/** The checkout's files as git sees them (tracked and new, not ignored), without dist/. */
export function sourceFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT })
    .toString('utf8')
    .split('\0')
    .filter((file) => file !== '' && !file.startsWith('dist/') && existsSync(join(REPO_ROOT, file)));
  return listed.sort();
}

/** The path of the built .deb (building it if this content was not built yet). */
export function debPackage(): string {
  const given = process.env['SASLAUTHD_TS_DEB'];
  if (given) {
    if (!existsSync(given)) throw new Error(`SASLAUTHD_TS_DEB=${given} does not exist`);
    return given;
  }
  const files = sourceFiles();
  const key = packagedContentKey(files);
  const directory = join(CACHE_ROOT, key);
  const built = existsSync(directory) ? readdirSync(directory).find((name) => name.endsWith('.deb')) : undefined;
  if (built) return join(directory, built);
  const deb = buildDeb(files, directory);
  // Older builds are of no more use (each is some 25 MB).
  for (const entry of readdirSync(CACHE_ROOT)) if (entry !== key) rmSync(join(CACHE_ROOT, entry), { recursive: true, force: true });
  return deb;
}

/** A key for what goes into the package, so editing a test does not rebuild it. */
export function packagedContentKey(files: readonly string[]): string {
  const hash = createHash('sha256');
  const packaged = files.filter((file) => /^(debian|src)\//.test(file) || ['package.json', 'package-lock.json', 'tsconfig.json'].includes(file));
  for (const file of packaged) hash.update(file).update('\0').update(readFileSync(join(REPO_ROOT, file))).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/**
 * The commits released versions were built from (main when that version was current: later
 * commits may carry the same changelog version with other packaging).
 */
const RELEASED_COMMITS: Readonly<Record<string, string>> = {
  '0.1.0': 'f38b83e586e6b0036688ebddf7b1763d5167daf3',
};

/**
 * A released version's package, built here (Debian 12) from its commit with this checkout's
 * node_modules; cached under /var/cache/saslauthd-ts-tests by commit. For upgrade tests.
 */
export function releasedDeb(version: string): string {
  const commit = RELEASED_COMMITS[version];
  if (!commit) throw new Error(`no known commit for ${PACKAGE} ${version}`);
  const changelog = spawnSync('git', ['show', `${commit}:debian/changelog`], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (changelog.status !== 0) throw new Error(`commit ${commit} (${PACKAGE} ${version}) is not in this clone (a shallow clone?)`);
  if (!changelog.stdout.startsWith(`${PACKAGE} (${version})`)) throw new Error(`commit ${commit} is not ${PACKAGE} ${version}`);
  const directory = join(RELEASED_CACHE, `${version}-${commit.slice(0, 12)}`);
  const built = existsSync(directory) ? readdirSync(directory).find((name) => name.endsWith('.deb')) : undefined;
  if (built) return join(directory, built);
  rmSync(directory, { recursive: true, force: true });
  const source = join(directory, 'src');
  mkdirSync(source, { recursive: true });
  execFileSync('sh', ['-c', 'git -C "$1" archive "$2" | tar -C "$3" -xf - && tar -C "$1" -cf - node_modules | tar -C "$3" -xf -', 'copy', REPO_ROOT, commit, source]);
  return runBuild(source, directory);
}

function buildDeb(files: readonly string[], directory: string): string {
  rmSync(directory, { recursive: true, force: true });
  const source = join(directory, 'src');
  mkdirSync(source, { recursive: true });
  writeFileSync(join(directory, 'files'), files.join('\0'));
  execFileSync('sh', ['-c', `tar -C "$1" --null -T "$2" -cf - node_modules | tar -C "$3" -xf -`, 'copy', REPO_ROOT, join(directory, 'files'), source]);
  return runBuild(source, directory);
}

/** dpkg-buildpackage in `source`; the .deb lands in `directory` (its parent), `source` goes. */
function runBuild(source: string, directory: string): string {
  const result = spawnSync('dpkg-buildpackage', ['-b', '-us', '-uc'], { cwd: source, encoding: 'utf8', maxBuffer: 64 << 20 });
  writeFileSync(join(directory, 'build.log'), `${result.stdout}\n${result.stderr}`);
  if (result.status !== 0) throw new Error(`dpkg-buildpackage failed (${result.status}); log: ${join(directory, 'build.log')}\n${result.stderr.slice(-3000)}`);
  rmSync(source, { recursive: true, force: true });
  const deb = readdirSync(directory).find((name) => name.endsWith('.deb'));
  if (!deb) throw new Error(`no .deb in ${directory}`);
  return join(directory, deb);
}
