'use strict';
/**
 * Entry point of /usr/sbin/saslauthd as built by this package: on Debian 12 a Node single
 * executable application (the node binary with this script injected; see debian/build-sea),
 * on Debian 13 a launcher linked to libnode that runs this file from /usr/lib/saslauthd-ts
 * (debian/saslauthd-launcher.cc). Being a
 * real executable is the point: start-stop-daemon in Debian's init script finds the daemon
 * by `--exec /usr/sbin/saslauthd`, i.e. by /proc/PID/exe, which for a `#!/usr/bin/node`
 * script would be /usr/bin/node.
 *
 * A SEA's main script is CommonJS and its `require` reaches only built-in modules, so the
 * compiled program (ES modules in /usr/lib/saslauthd-ts) is loaded through createRequire
 * (require(esm), Node >= 20.19). process.argv is [execPath, argv0 or this script,
 * ...arguments], the shape the program sees under plain node. The program starts copies of
 * itself (the detached daemon, the workers) as /usr/sbin/saslauthd with SASLAUTHD_TS_ENTRY
 * naming the part to run (src/native/self-exec.ts, told by PACKAGED_ENTRY_MARK that this
 * entry point runs it).
 *
 * The compiled program is always the package's: nothing in the environment chooses another
 * (an environment variable that loads code is what NODE_OPTIONS is, and is removed).
 */
const { createRequire } = require('node:module');
const { join } = require('node:path');

const ENTRY_VARIABLE = 'SASLAUTHD_TS_ENTRY';
/** Where the package installs the compiled program. */
const home = '/usr/lib/saslauthd-ts';
/** src/native/self-exec.ts: PACKAGED_ENTRY_MARK. */
const PACKAGED_ENTRY_MARK = Symbol.for('saslauthd-ts.packaged-entry');
const entries = {
  saslauthd: 'dist/src/cli/saslauthd.js',
  worker: 'dist/src/workers/worker-main.js',
  // /usr/sbin/saslauthdctl (debian/saslauthdctl) runs this executable with this entry.
  saslauthdctl: 'dist/src/cli/saslauthdctl.js',
};

const entry = process.env[ENTRY_VARIABLE] || 'saslauthd';
delete process.env[ENTRY_VARIABLE]; // what this process starts chooses its own entry
const script = Object.prototype.hasOwnProperty.call(entries, entry) ? entries[entry] : undefined;
if (script === undefined) {
  process.stderr.write(`saslauthd: unknown entry point ${JSON.stringify(entry)}\n`);
  process.exit(1);
}
globalThis[PACKAGED_ENTRY_MARK] = true;
// Copies of itself do not inherit Node's variables (the launcher removed them already; a
// single executable has read them at its start: the units and the helper remove them).
for (const name of Object.keys(process.env)) if (name.startsWith('NODE_')) delete process.env[name];
try {
  createRequire(join(home, 'package.json'))(join(home, script));
} catch (error) {
  process.stderr.write(`saslauthd: cannot load ${join(home, script)}: ${error && error.message}\n`);
  process.exit(1);
}
