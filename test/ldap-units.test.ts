/**
 * The ldap mechanism's pure parts, without a server: token expansion and escaping, stored
 * password schemes (hashes made with node:crypto and libcrypt), `ldap_servers` parsing and
 * the key rules. The same paths run against slapd in ldap.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { checkStoredPassword } from '../src/mechanisms/ldap/password-schemes.js';
import { escapeDnValue, escapeFilterValue, expand } from '../src/mechanisms/ldap/tokens.js';
import { DEFAULT_LDAPI_PATH, ldapConfigFrom, parseServers, unknownLdapKeys } from '../src/mechanisms/ldap/config.js';
import { parseConfigText } from '../src/mechanisms/config-file.js';

const values = (login: string, realm = '', service = 'imap') => ({
  login: Buffer.from(login, 'utf8'),
  realm: Buffer.from(realm, 'utf8'),
  service: Buffer.from(service, 'utf8'),
});

test('tokens: %u %U %d %1-%9 %s %r %R %D %% and unknown ones', () => {
  const tokens = { ...values('bob@mail.example.org', 'example.com', 'smtp'), userDn: 'uid=bob,dc=x' };
  const text = (template: string): string | undefined => expand(template, tokens, (value) => value.toString('utf8'));
  assert.equal(text('%u|%U|%d|%1|%2|%3|%4|%s|%r|%R|%D|%%|%x|%'), 'bob@mail.example.org|bob|mail.example.org|org|example|mail||smtp|example.com|@example.com|uid=bob,dc=x|%|%x|%');
  const plain = { ...values('bob') };
  assert.equal(expand('%U/%d/%1/%R', plain, (value) => value.toString('utf8')), 'bob///');
});

test('filter escaping (RFC 4515): a value never becomes filter syntax', () => {
  const filter = (login: string): string | undefined => expand('(uid=%u)', values(login), escapeFilterValue);
  assert.equal(filter('*'), '(uid=\\2a)');
  assert.equal(filter('a)(|(uid=*'), '(uid=a\\29\\28|\\28uid=\\2a)');
  assert.equal(filter('back\\slash'), '(uid=back\\5cslash)');
  assert.equal(filter('tab\there'), '(uid=tab\\09here)');
  assert.equal(filter('jürgen'), '(uid=jürgen)', 'UTF-8 goes as itself');
  assert.equal(expand('(uid=%u)', { ...values(''), login: Buffer.from([0x6a, 0xfc]) }, escapeFilterValue), undefined, 'latin-1 bytes cannot be sent');
});

test('DN escaping (RFC 4514)', () => {
  const dn = (login: string): string | undefined => expand('uid=%u,dc=x', values(login), escapeDnValue);
  assert.equal(dn('a,b+c"d\\e<f>g;h=i'), 'uid=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i,dc=x');
  assert.equal(dn('#lead'), 'uid=\\#lead,dc=x');
  assert.equal(dn(' both '), 'uid=\\ both\\ ,dc=x');
  assert.equal(dn('mid#dle'), 'uid=mid#dle,dc=x');
});

test('password schemes: digests made here, salted and not, case of the scheme name', () => {
  const password = Buffer.from('Unit-pass-1');
  const wrong = Buffer.from('Unit-pass-2');
  const make = (scheme: string, algorithm: string, salt?: Buffer): Buffer => {
    const digest = createHash(algorithm).update(password).update(salt ?? Buffer.alloc(0)).digest();
    return Buffer.from(`${scheme}${Buffer.concat([digest, salt ?? Buffer.alloc(0)]).toString('base64')}`);
  };
  const cases: [string, Buffer][] = [
    ['{MD5}', make('{MD5}', 'md5')],
    ['{SMD5}', make('{SMD5}', 'md5', randomBytes(4))],
    ['{SHA}', make('{SHA}', 'sha1')],
    ['{SSHA}', make('{SSHA}', 'sha1', randomBytes(8))],
    ['{ssha}', make('{ssha}', 'sha1', randomBytes(8))],
    ['{SHA256}', make('{SHA256}', 'sha256')],
    ['{SSHA256}', make('{SSHA256}', 'sha256', randomBytes(8))],
    ['{SHA384}', make('{SHA384}', 'sha384')],
    ['{SSHA384}', make('{SSHA384}', 'sha384', randomBytes(8))],
    ['{SHA512}', make('{SHA512}', 'sha512')],
    ['{SSHA512}', make('{SSHA512}', 'sha512', randomBytes(8))],
    ['cleartext', password],
  ];
  for (const [name, stored] of cases) {
    assert.equal(checkStoredPassword(password, stored), 'match', name);
    assert.equal(checkStoredPassword(wrong, stored), 'mismatch', name);
  }
  assert.equal(checkStoredPassword(password, Buffer.from('{SHA}not base64!')), 'malformed');
  assert.equal(checkStoredPassword(password, Buffer.from('{SHA}AAAA')), 'malformed', 'wrong digest length');
  assert.equal(checkStoredPassword(password, Buffer.from('{SSHA}' + createHash('sha1').update(password).digest('base64'))), 'malformed', 'salted form without salt');
  assert.equal(checkStoredPassword(Buffer.from('{PBKDF2}x'), Buffer.from('{PBKDF2}x')), 'unsupported-scheme');
});

test('password schemes: {CRYPT} and {UNIX} through libcrypt; a disabled hash never matches', () => {
  // The SHA-crypt specification's sha512crypt test vector ("Hello world!", salt "saltstring").
  const hash = '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1';
  const stored = (scheme: string, value: string): Buffer => Buffer.from(`${scheme}${value}`);
  assert.equal(checkStoredPassword(Buffer.from('Hello world!'), stored('{CRYPT}', hash)), 'match');
  assert.equal(checkStoredPassword(Buffer.from('Hello world!'), stored('{unix}', hash)), 'match');
  assert.equal(checkStoredPassword(Buffer.from('Hello world?'), stored('{CRYPT}', hash)), 'mismatch');
  assert.equal(checkStoredPassword(Buffer.from('x'), stored('{CRYPT}', '*')), 'mismatch');
  assert.equal(checkStoredPassword(Buffer.from('x'), stored('{CRYPT}', '!')), 'mismatch');
  assert.equal(checkStoredPassword(Buffer.from('x'), stored('{UNIX}', hash)), 'mismatch');
});

test('ldap_servers: order kept, default ports, IPv6, ldapi paths', () => {
  const servers = parseServers('ldap://a.example ldaps://[::1]:6360/ ldapi:/// ldapi://%2Frun%2Fs%2Fldapi/ LDAP://b:3890');
  assert.deepEqual(servers.map((server) => (server.kind === 'tcp' ? `${server.tls}:${server.host}:${server.port}` : `ldapi:${server.path}`)), [
    'false:a.example:389',
    'true:::1:6360',
    `ldapi:${DEFAULT_LDAPI_PATH}`,
    'ldapi:/run/s/ldapi',
    'false:b:3890',
  ]);
  assert.throws(() => parseServers('ldap://x:99999/'), /port out of range/);
  assert.throws(() => parseServers('   '), /no server URI/);
});

test('keys: defaults, aliases, case of values, unknown ldap_ keys reported', () => {
  const config = ldapConfigFrom(parseConfigText('LDAP_AUTH_METHOD: Custom\nldap_password: pw-alias\nldap_default_domain: example.com\nldap_scope: ONE\n', 'f'));
  assert.equal(config.authMethod, 'custom');
  assert.equal(config.bindPassword, 'pw-alias');
  assert.equal(config.defaultRealm, 'example.com');
  assert.equal(config.scope, 'one');
  assert.equal(config.filter, '(uid=%u)');
  assert.equal(config.sizeLimit, 1);
  assert.equal(config.timeoutMs, 5_000);
  assert.equal(config.restart, true);
  assert.equal(config.tls.checkPeer, true);
  assert.equal(config.sasl, undefined);
  assert.deepEqual(unknownLdapKeys(parseConfigText('ldap_servre: x\nkrb5_keytab: y\nldap_filter: z\n', 'f')), ['ldap_servre']);
  const sasl = ldapConfigFrom(parseConfigText('ldap_use_sasl: yes\nldap_auth_method: custom\nldap_authz_id: u:admin\n', 'f'));
  assert.equal(sasl.authMethod, 'fastbind', 'SASL forces fastbind, as in the original');
  assert.deepEqual(sasl.sasl, { mechanism: 'PLAIN', authzId: 'u:admin' });
});
