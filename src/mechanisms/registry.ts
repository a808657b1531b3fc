/**
 * Mechanism names accepted by `-a`, in the order the C daemon lists them (`-v`).
 * A name whose implementation has not landed yet is known but refused, with the
 * original's `unknown authentication mechanism` message.
 */
import type { MechanismFactory } from './types.js';
import { getpwentMechanism } from './getpwent.js';
import { httpformMechanism } from './httpform/httpform.js';
import { kerberos5Mechanism } from './kerberos5/index.js';
import { pamMechanism } from './pam.js';
import { rimapMechanism } from './rimap/rimap.js';
import { sasldbMechanism } from './sasldb.js';
import { shadowMechanism } from './shadow.js';

/** What Debian's saslauthd 2.1.28 was built with, in its table order. */
export const DEBIAN_MECHANISM_NAMES = ['sasldb', 'getpwent', 'kerberos5', 'pam', 'rimap', 'shadow', 'ldap'] as const;

/**
 * In the original's source but left out of Debian's build; built here, and listed by `-v`
 * after Debian's names, where the original's table (mechanisms.c) has it.
 */
export const NON_DEBIAN_MECHANISM_NAMES = ['httpform'] as const;

const IMPLEMENTED: ReadonlyMap<string, MechanismFactory> = new Map([
  [pamMechanism.name, pamMechanism],
  [shadowMechanism.name, shadowMechanism],
  [getpwentMechanism.name, getpwentMechanism],
  [sasldbMechanism.name, sasldbMechanism],
  [kerberos5Mechanism.name, kerberos5Mechanism],
  [rimapMechanism.name, rimapMechanism],
  [httpformMechanism.name, httpformMechanism],
]);

/** Names this build can run, for `-v`. */
export function availableMechanismNames(): string[] {
  return [...DEBIAN_MECHANISM_NAMES, ...NON_DEBIAN_MECHANISM_NAMES].filter((name) => IMPLEMENTED.has(name));
}

/** The factory for an `-a` argument (case-insensitive), or undefined. */
export function findMechanism(name: string): MechanismFactory | undefined {
  return IMPLEMENTED.get(name.toLowerCase());
}
