/**
 * The directory the ldap tests (and the ldap bench scenario) run against: people with every
 * password scheme, logins with filter and DN special characters, a realm subtree, a group;
 * and a writer of saslauthd.conf files for the mechanism under test.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICE_DN, SUFFIX, hash, ldifLine, person, personDn } from './slapd.js';

export const PEOPLE = `ou=people,${SUFFIX}`;
export const REALM_OU = `ou=example.com,${SUFFIX}`;
export const GROUP_DN = `cn=mailusers,ou=groups,${SUFFIX}`;
export const SERVICE_PASSWORD = 'Reader-secret-77';

export const ALICE = { login: 'alice', password: 'Alice-pass-1' };
export const BOB = { login: 'bob', password: 'Bob-pass-2' };
/** A login made of filter and DN special characters. */
export const STAR = { login: 'st*r(1)\\x', password: 'Star-pass-3' };
/** 8-bit (UTF-8) login and password. */
export const JURGEN = { login: 'jürgen', password: 'Jürgen-pass-4' };
/** Found by mail under -r: login `dave` + realm `example.com`. */
export const DAVE = { login: 'dave', realm: 'example.com', password: 'Dave-pass-5' };
/** Under ou=example.com: found with ldap_search_base ou=%d. */
export const ERIN = { login: 'erin', domain: 'example.com', password: 'Erin-pass-6' };

/** One user per password scheme: login s-<scheme>, password Scheme-<scheme>-9. */
export function schemeUsers(): { scheme: string; login: string; password: string; stored: string }[] {
  const password = (scheme: string): string => `Scheme-${scheme}-9`;
  const made: [string, (pw: string) => string][] = [
    ['crypt', (pw) => hash.slappasswd('{CRYPT}', pw, '$5$%.16s')],
    ['unix', (pw) => `{UNIX}${hash.slappasswd('{CRYPT}', pw, '$6$%.16s').replace(/^\{CRYPT\}/, '')}`],
    ['md5', (pw) => hash.slappasswd('{MD5}', pw)],
    ['smd5', (pw) => hash.slappasswd('{SMD5}', pw)],
    ['sha', (pw) => hash.slappasswd('{SHA}', pw)],
    ['ssha', (pw) => hash.slappasswd('{SSHA}', pw)],
    ['sha256', (pw) => hash.slappasswd('{SHA256}', pw)],
    ['ssha256', (pw) => hash.slappasswd('{SSHA256}', pw)],
    ['sha384', (pw) => hash.slappasswd('{SHA384}', pw)],
    ['ssha384', (pw) => hash.digest('SSHA384', 'sha384', pw, hash.salt())],
    ['sha512', (pw) => hash.digest('SHA512', 'sha512', pw)],
    ['ssha512', (pw) => hash.slappasswd('{SSHA512}', pw)],
    ['lowercase-ssha', (pw) => hash.digest('ssha', 'sha1', pw, hash.salt())],
    ['clear', (pw) => pw],
  ];
  return made.map(([scheme, make]) => ({ scheme, login: `s-${scheme}`, password: password(scheme), stored: make(password(scheme)) }));
}

/** The scheme user with a cleartext userPassword: the only kind slapd's SASL PLAIN can check. */
export const CLEARTEXT_USER = 's-clear';

/** A user whose stored value has a scheme nobody knows: never matched, even by that very string. */
export const ODD_SCHEME = { login: 's-odd', stored: '{ARGON9}Odd-scheme-value-1' };

export function directoryLdif(schemes = schemeUsers()): string {
  const ssha = (password: string): string => hash.digest('SSHA', 'sha1', password, hash.salt());
  const ou = (dn: string, name: string): string => [ldifLine('dn', dn), 'objectClass: organizationalUnit', ldifLine('ou', name), ''].join('\n');
  return [
    ou(PEOPLE, 'people'),
    ou(REALM_OU, 'example.com'),
    ou(`ou=groups,${SUFFIX}`, 'groups'),
    person(ALICE.login, PEOPLE, ssha(ALICE.password)),
    person(BOB.login, PEOPLE, ssha(BOB.password)),
    person(STAR.login, PEOPLE, ssha(STAR.password)),
    person(JURGEN.login, PEOPLE, ssha(JURGEN.password)),
    person(DAVE.login, PEOPLE, ssha(DAVE.password), [`mail: ${DAVE.login}@${DAVE.realm}`]),
    person(ERIN.login, REALM_OU, ssha(ERIN.password)),
    ...schemes.map((user) => person(user.login, PEOPLE, user.stored)),
    person(ODD_SCHEME.login, PEOPLE, ODD_SCHEME.stored),
    [
      `dn: ${GROUP_DN}`, 'objectClass: groupOfUniqueNames', 'cn: mailusers',
      `uniqueMember: ${personDn(ALICE.login, PEOPLE)}`, `uniqueMember: ${personDn(STAR.login, PEOPLE)}`,
      `uniqueMember: ${personDn(CLEARTEXT_USER, PEOPLE)}`, '',
    ].join('\n'),
  ].join('\n');
}

/** Writes a saslauthd.conf with the service account and `keys` (key → value). */
export function writeLdapConfig(directory: string, name: string, keys: Record<string, string>, withServiceAccount = true): string {
  const path = join(directory, name);
  const all: Record<string, string> = {
    ...(withServiceAccount ? { ldap_bind_dn: SERVICE_DN, ldap_bind_pw: SERVICE_PASSWORD } : {}),
    ldap_search_base: PEOPLE,
    ldap_timeout: '2',
    ...keys,
  };
  writeFileSync(path, Object.entries(all).map(([key, value]) => `${key}: ${value}\n`).join(''), { mode: 0o600 });
  return path;
}
