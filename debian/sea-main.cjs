'use strict';
/**
 * Entry point of /usr/sbin/saslauthd as built by this package: a Node single executable
 * application (the node binary with this script injected; see debian/build-sea). Being a
 * real executable is the point: start-stop-daemon in Debian's init script finds the daemon
 * by `--exec /usr/sbin/saslauthd`, i.e. by /proc/PID/exe, which for a `#!/usr/bin/node`
 * script would be /usr/bin/node.
 *
 * A SEA's main script is CommonJS and its `require` reaches only built-in modules, so the
 * compiled program (ES modules in /usr/lib/saslauthd-ts) is loaded through createRequire
 * (require(esm), Node >= 20.19). process.argv is [execPath, argv0, ...arguments], the shape
 * the program sees under plain node. The program starts copies of itself (the detached
 * daemon, the workers) as /usr/sbin/saslauthd with SASLAUTHD_TS_ENTRY naming the part to
 * run (src/native/self-exec.ts).
 */
const { createRequire } = require('node:module');
const { join } = require('node:path');

const ENTRY_VARIABLE = 'SASLAUTHD_TS_ENTRY';
/** Where the package installs the compiled program; SASLAUTHD_TS_HOME overrides it (tests). */
const home = process.env.SASLAUTHD_TS_HOME || '/usr/lib/saslauthd-ts';
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
try {
  createRequire(join(home, 'package.json'))(join(home, script));
} catch (error) {
  process.stderr.write(`saslauthd: cannot load ${join(home, script)}: ${error && error.message}\n`);
  process.exit(1);
}
