/**
 * The kerberos5 mechanism's pure parts: the principal name rules (the original's
 * form_principal_name, with the -r double realm fixed) and its config keys.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../src/mechanisms/config-file.js';
import { MAX_PRINCIPAL_BYTES, formPrincipalName } from '../src/mechanisms/kerberos5/principal.js';
import { maxAbandonedCalls } from '../src/mechanisms/kerberos5/index.js';
import { configSwitch, settingsFromEntries } from '../src/mechanisms/kerberos5/settings.js';
import { REPLY_INIT_CREDS_FAILED, REPLY_VERIFY_FAILED, timeoutReply } from '../src/mechanisms/kerberos5/verification.js';

function settings(text: string) {
  return settingsFromEntries(parseConfigText(text, 'test.conf'), 'test.conf');
}

function principal(login: string | Buffer, service: string, realm: string, text = ''): string | null {
  const name = formPrincipalName(Buffer.from(login), Buffer.from(service), Buffer.from(realm), settings(text));
  return name === null ? null : name.toString('latin1');
}

describe('principal name', () => {
  test('login, and login@realm when the realm is not empty', () => {
    assert.equal(principal('alice', 'imap', ''), 'alice');
    assert.equal(principal('alice', 'imap', 'TS.TEST'), 'alice@TS.TEST');
  });

  test('-r gave login@realm already: the realm is appended once (cyrus-sasl#832)', () => {
    assert.equal(principal('alice@TS.TEST', 'imap', 'TS.TEST'), 'alice@TS.TEST');
    assert.equal(principal('alice@TS.TEST', 'smtp', 'TS.TEST', 'krb5_smtp_instance: mail'), 'alice/mail@TS.TEST');
    // Another realm in the login is the client's business: appended as the original does.
    assert.equal(principal('alice@OTHER', 'imap', 'TS.TEST'), 'alice@OTHER@TS.TEST');
    // Only a whole "@realm" suffix counts.
    assert.equal(principal('aliceTS.TEST', 'imap', 'TS.TEST'), 'aliceTS.TEST@TS.TEST');
  });

  test('krb5_<service>_instance forces an instance; the same one named by the user is kept; another is refused', () => {
    const conf = 'krb5_smtp_instance: mail';
    assert.equal(principal('carol', 'smtp', '', conf), 'carol/mail');
    assert.equal(principal('carol/mail', 'smtp', 'TS.TEST', conf), 'carol/mail@TS.TEST');
    assert.equal(principal('carol/admin', 'smtp', '', conf), null);
    assert.equal(principal('carol', 'imap', '', conf), 'carol');
    // Looked up as the service is sent, among lower-cased keys: capitals never match.
    assert.equal(principal('carol', 'SMTP', '', conf), 'carol');
  });

  test('krb5_conv_krb4_instance turns the first "." into "/", before the forced instance is checked', () => {
    assert.equal(principal('dave.admin', 'imap', '', 'krb5_conv_krb4_instance: yes'), 'dave/admin');
    assert.equal(principal('a.b.c', 'imap', 'TS.TEST', 'krb5_conv_krb4_instance: 1'), 'a/b.c@TS.TEST');
    assert.equal(principal('dave.admin', 'imap', '', 'krb5_conv_krb4_instance: no'), 'dave.admin');
    assert.equal(principal('dave.mail', 'smtp', '', 'krb5_conv_krb4_instance: on\nkrb5_smtp_instance: mail'), 'dave/mail');
    assert.equal(principal('dave.x', 'smtp', '', 'krb5_conv_krb4_instance: on\nkrb5_smtp_instance: mail'), null);
    // With -r the realm's dots stay dots.
    assert.equal(principal('dave.admin@TS.TEST', 'imap', 'TS.TEST', 'krb5_conv_krb4_instance: on'), 'dave/admin@TS.TEST');
  });

  test('bytes pass through unchanged; too long or empty is refused', () => {
    const login = Buffer.from([0x61, 0xff, 0x80, 0x62]);
    const name = formPrincipalName(login, Buffer.from('imap'), Buffer.from('R'), settings(''));
    assert.deepEqual(name, Buffer.concat([login, Buffer.from('@R')]));
    assert.equal(principal('x'.repeat(MAX_PRINCIPAL_BYTES), 'imap', ''), 'x'.repeat(MAX_PRINCIPAL_BYTES));
    assert.equal(principal('x'.repeat(MAX_PRINCIPAL_BYTES - 1), 'imap', 'R'), null);
    assert.equal(principal('', 'imap', ''), null);
  });
});

describe('settings', () => {
  test('defaults: system keytab, host, this host, no conversion, 10 s', () => {
    const s = settings('');
    assert.equal(s.keytab, undefined);
    assert.equal(s.verifyPrincipal, 'host');
    assert.equal(s.serverName, undefined);
    assert.equal(s.convertKrb4Instance, false);
    assert.equal(s.timeoutMs, 10_000);
  });

  test('keys, next to other mechanisms\' keys', () => {
    const s = settings(
      'ldap_servers: ldap://localhost/\nKRB5_KEYTAB: /etc/krb5.keytab.sasl\nkrb5_verify_principal: imap\n' +
        'krb5_servername: mail.example.org\nkrb5_timeout: 2.5\nhttpform_host: x\n',
    );
    assert.equal(s.keytab, '/etc/krb5.keytab.sasl');
    assert.equal(s.verifyPrincipal, 'imap');
    assert.equal(s.serverName, 'mail.example.org');
    assert.equal(s.timeoutMs, 2_500);
  });

  test('krb5_timeout that is not a positive number of seconds is refused', () => {
    for (const bad of ['0', '-1', 'ten', '1e3', '3601']) {
      assert.throws(() => settings(`krb5_timeout: ${bad}`), /krb5_timeout must be/);
    }
  });

  test('switches read as the original\'s cfile_getswitch', () => {
    for (const on of ['1', 'yes', 'on', 'true', 'y']) assert.equal(configSwitch(on, false), true, on);
    for (const off of ['0', 'no', 'off', 'false', 'n']) assert.equal(configSwitch(off, true), false, off);
    for (const other of ['Yes', 'ON', 'maybe', 'o']) assert.equal(configSwitch(other, false), false, other);
    assert.equal(configSwitch(undefined, true), true);
  });

  test('the reply for a run past its deadline names the step it waited in', () => {
    assert.equal(timeoutReply('start'), REPLY_INIT_CREDS_FAILED);
    assert.equal(timeoutReply('initial-credentials'), REPLY_INIT_CREDS_FAILED);
    assert.equal(timeoutReply('verification'), REPLY_VERIFY_FAILED);
  });

  test('abandoned calls keep one libuv pool thread free', () => {
    assert.equal(maxAbandonedCalls({}), 3);
    assert.equal(maxAbandonedCalls({ UV_THREADPOOL_SIZE: '8' }), 7);
    assert.equal(maxAbandonedCalls({ UV_THREADPOOL_SIZE: '1' }), 1);
    assert.equal(maxAbandonedCalls({ UV_THREADPOOL_SIZE: 'x' }), 3);
  });
});
