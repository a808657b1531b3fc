/**
 * Each process of the daemon loads the configured mechanism and no other (registry.ts loads a
 * mechanism's module only when asked for): a `-a pam` daemon's primary and workers never
 * evaluate the ldap, kerberos5, rimap, httpform, sasldb, shadow or getpwent modules (ldapts,
 * the network code, the Kerberos bindings).
 *
 * Evidence from real processes: the test runs a copy of dist/ in which every module under
 * mechanisms/ first appends "PID path" to a file when it is evaluated, starts that copy with
 * `-a pam -n 2` and reads who loaded what. The same marks show pam.js loaded by the primary
 * and by each worker, so a mark that is missing means "not loaded", not "not marked".
 * No PAM request is made (no pam_wrapper): a worker is ready once it has created its mechanism.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { REPO_ROOT } from './helpers/paths.js';
import { childPids, eventually } from './helpers/processes.js';

/** Workers of the daemon under test: the primary and each of them must show their marks. */
const WORKERS = 2;
/** Modules under dist/src/mechanisms/ that every mechanism shares: their marks say nothing. */
const SHARED_MODULES = new Set(['registry.js', 'types.js']);

let copy: string;
let marks: string;

before(() => {
  copy = mkdtempSync(join(tmpdir(), 'sts-loading-'));
  marks = join(copy, 'loaded.txt');
  cpSync(join(REPO_ROOT, 'dist', 'src'), join(copy, 'dist', 'src'), { recursive: true });
  writeFileSync(join(copy, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(copy, 'node_modules'));
  const mechanisms = join(copy, 'dist', 'src', 'mechanisms');
  for (const file of javaScriptFiles(mechanisms)) {
    const name = relative(mechanisms, file);
    if (SHARED_MODULES.has(name)) continue;
    const mark =
      `import { appendFileSync as markLoaded } from 'node:fs';\n` +
      `markLoaded(process.env.STS_LOAD_MARKS, \`\${process.pid} ${name}\\n\`);\n`;
    writeFileSync(file, mark + readFileSync(file, 'utf8'));
  }
});

after(() => rmSync(copy, { recursive: true, force: true }));

function javaScriptFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return javaScriptFiles(path);
    return entry.name.endsWith('.js') ? [path] : [];
  });
}

/** Which processes evaluated each marked module. */
function loadedModules(): Map<string, Set<number>> {
  const loaded = new Map<string, Set<number>>();
  if (!existsSync(marks)) return loaded;
  for (const line of readFileSync(marks, 'utf8').split('\n')) {
    const [pid, name] = line.split(' ');
    if (!pid || !name) continue;
    const pids = loaded.get(name) ?? new Set<number>();
    pids.add(Number(pid));
    loaded.set(name, pids);
  }
  return loaded;
}

/** Starts the marked copy with `mechanism` and waits until the primary and every worker loaded `module`. */
async function startMarked(mechanism: string, module: string): Promise<Daemon> {
  const daemon = await Daemon.start({
    mechanism,
    script: join(copy, 'dist', 'src', 'cli', 'saslauthd.js'),
    args: ['-n', String(WORKERS)],
    env: { ...process.env, STS_LOAD_MARKS: marks },
  });
  const processes = (): number[] => [daemon.pid, ...childPids(daemon.pid)];
  try {
    await eventually(
      () => processes().length === WORKERS + 1 && processes().every((pid) => loadedModules().get(module)?.has(pid)),
      `${module} loaded by the primary and ${WORKERS} workers (marks: ${existsSync(marks) ? readFileSync(marks, 'utf8').trim() : 'none'})`,
    );
  } catch (error) {
    await daemon.dispose();
    throw error;
  }
  return daemon;
}

test('a -a pam daemon: the primary and every worker load pam.js and no other mechanism', async () => {
  const daemon = await startMarked('pam', 'pam.js');
  try {
    const loaded = loadedModules();
    for (const [name, pids] of loaded) {
      const other = /^(ldap|kerberos5|rimap|httpform|network)\//.test(name) || ['sasldb.js', 'shadow.js', 'getpwent.js'].includes(name);
      assert.ok(!other, `${name} was loaded by ${[...pids].join(', ')} in a -a pam daemon`);
    }
  } finally {
    await daemon.dispose();
  }
});

test('the marks work for another mechanism: a -a getpwent daemon loads getpwent.js, not pam.js', async () => {
  rmSync(marks, { force: true });
  const daemon = await startMarked('getpwent', 'getpwent.js');
  try {
    assert.equal(loadedModules().get('pam.js'), undefined, 'pam.js is not loaded by a -a getpwent daemon');
  } finally {
    await daemon.dispose();
  }
});
