/**
 * Reading one value of the ldap config: the error that names the key, and the original's
 * value forms (booleans, whole numbers, enumerations compared case-insensitively, aliases).
 */
import type { ConfigEntries } from '../config-file.js';

export class LdapConfigError extends Error {
  constructor(key: string, reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'LdapConfigError';
  }
}

export function first(entries: ConfigEntries, ...keys: string[]): { key: string; value: string } | undefined {
  // lak.c assigns in file order, so with both aliases present the later line wins; the
  // shared reader keeps only the last value per key, so prefer the alias written last.
  let found: { key: string; value: string } | undefined;
  for (const [key, value] of entries) if (keys.includes(key)) found = { key, value };
  return found;
}

export function oneOf<T extends string>(entries: ConfigEntries, key: string, allowed: readonly T[], fallback: T): T {
  const value = entries.get(key);
  if (value === undefined) return fallback;
  const lower = value.toLowerCase() as T;
  if (!allowed.includes(lower)) throw new LdapConfigError(key, `"${value}" is not one of ${allowed.join(', ')}`);
  return lower;
}

/** The original's booleans: on/yes/true (and 1) are true. We also refuse what is neither. */
export function parseBoolean(key: string, value: string): boolean {
  const lower = value.toLowerCase();
  if (['on', 'yes', 'true', '1'].includes(lower)) return true;
  if (['off', 'no', 'false', '0'].includes(lower)) return false;
  throw new LdapConfigError(key, `"${value}" is not a boolean (on/off, yes/no, true/false)`);
}

export function booleanKey(entries: ConfigEntries, key: string, fallback: boolean): boolean {
  const value = entries.get(key);
  return value === undefined ? fallback : parseBoolean(key, value);
}

export function integerKey(entries: ConfigEntries, key: string, fallback: number, min: number): number {
  const value = entries.get(key);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new LdapConfigError(key, `"${value}" is not a whole number >= ${min}`);
  return Number(value);
}

