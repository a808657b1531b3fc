/**
 * Mechanism names accepted by `-a`, in the order the C daemon lists them (`-v`).
 * A name whose implementation has not landed yet is known but refused, with the
 * original's `unknown authentication mechanism` message.
 *
 * Each mechanism's module is loaded only when that mechanism is asked for: a daemon runs one
 * mechanism, and every process (the primary and each worker) would otherwise carry all of them
 * (ldapts, the network and TLS code, the Kerberos and Berkeley DB bindings: about 3 MB of heap
 * per process, measured in bench/ and the README's Performance section). The load is
 * synchronous (require of an ES module, Node >= 20.19, as debian/sea-main.cjs already relies
 * on), so check() and create() keep their synchronous contract; a module already imported
 * elsewhere is the same instance (one module cache).
 */
import { createRequire } from 'node:module';
import type { MechanismFactory } from './types.js';

/** What Debian's saslauthd 2.1.28 was built with, in its table order. */
export const DEBIAN_MECHANISM_NAMES = ['sasldb', 'getpwent', 'kerberos5', 'pam', 'rimap', 'shadow', 'ldap'] as const;

/**
 * In the original's source but left out of Debian's build; built here, and listed by `-v`
 * after Debian's names, where the original's table (mechanisms.c) has it.
 */
export const NON_DEBIAN_MECHANISM_NAMES = ['httpform'] as const;

const load = createRequire(import.meta.url);

/** One row per mechanism: its `-a` name and how to load its factory (only when asked for). */
const IMPLEMENTED: ReadonlyMap<string, () => MechanismFactory> = new Map([
  ['pam', () => (load('./pam.js') as typeof import('./pam.js')).pamMechanism],
  ['shadow', () => (load('./shadow.js') as typeof import('./shadow.js')).shadowMechanism],
  ['getpwent', () => (load('./getpwent.js') as typeof import('./getpwent.js')).getpwentMechanism],
  ['sasldb', () => (load('./sasldb.js') as typeof import('./sasldb.js')).sasldbMechanism],
  ['kerberos5', () => (load('./kerberos5/index.js') as typeof import('./kerberos5/index.js')).kerberos5Mechanism],
  ['rimap', () => (load('./rimap/rimap.js') as typeof import('./rimap/rimap.js')).rimapMechanism],
  ['httpform', () => (load('./httpform/httpform.js') as typeof import('./httpform/httpform.js')).httpformMechanism],
  ['ldap', () => (load('./ldap/index.js') as typeof import('./ldap/index.js')).ldapMechanism],
]);

/** Names this build can run, for `-v`. */
export function availableMechanismNames(): string[] {
  return [...DEBIAN_MECHANISM_NAMES, ...NON_DEBIAN_MECHANISM_NAMES].filter((name) => IMPLEMENTED.has(name));
}

/**
 * The factory for an `-a` argument (case-insensitive), or undefined for a name this build
 * does not have. Loads that mechanism's module (and only it) on the first call.
 */
export function findMechanism(name: string): MechanismFactory | undefined {
  return IMPLEMENTED.get(name.toLowerCase())?.();
}
