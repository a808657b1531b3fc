/** The saslauthd.conf reader shared by ldap, kerberos5 and httpform. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigFileError, configPathFor, parseConfigText, readConfigFile } from '../src/mechanisms/config-file.js';

test('key: value lines, comments, blanks, case-insensitive keys, last repeat wins', () => {
  const entries = parseConfigText('# comment\n\nLDAP_Servers:  ldap://a/ ldap://b/ \r\nldap_filter: (uid=%u)\nldap_filter:(mail=%u)\n', 'x');
  assert.deepEqual([...entries], [
    ['ldap_servers', 'ldap://a/ ldap://b/'],
    ['ldap_filter', '(mail=%u)'],
  ]);
});

test('a value keeps its own colons', () => {
  assert.equal(parseConfigText('ldap_servers: ldaps://h:636/\n', 'x').get('ldap_servers'), 'ldaps://h:636/');
});

test('a line without a colon, an empty key or an empty value invalidates the file, naming the line', () => {
  assert.throws(() => parseConfigText('a: 1\nnonsense\n', '/etc/f'), (e: ConfigFileError) => e.line === 2 && /\/etc\/f:2:/.test(e.message));
  assert.throws(() => parseConfigText(': 1\n', 'f'), /empty key/);
  assert.throws(() => parseConfigText('a:\n', 'f'), /empty value for a/);
});

test('readConfigFile: missing file is an error unless optional; -O names the path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  try {
    const path = join(dir, 'saslauthd.conf');
    assert.throws(() => readConfigFile(path), /cannot be read \(ENOENT\)/);
    assert.equal(readConfigFile(path, false).size, 0);
    writeFileSync(path, 'krb5_keytab: /etc/krb5.keytab\n');
    assert.equal(readConfigFile(path).get('krb5_keytab'), '/etc/krb5.keytab');
    assert.equal(configPathFor(path), path);
    assert.equal(configPathFor(undefined), '/etc/saslauthd.conf');
    assert.equal(configPathFor(''), '/etc/saslauthd.conf');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
