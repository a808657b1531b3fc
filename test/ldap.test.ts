/**
 * The ldap mechanism in-process against a real slapd (scratch config, mdb, LDIF fixtures,
 * a throwaway CA): auth methods, every password scheme, groups, tokens, escaping, TLS
 * (ldaps://, StartTLS, ldapi://), failover, outages and stalls, config refusals.
 * The daemon-level checks and the C daemon comparison are in ldap-daemon.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ldapMechanism } from '../src/mechanisms/ldap/index.js';
import type { Mechanism, MechanismLog } from '../src/mechanisms/types.js';
import { Slapd, hash, makeTestCa, personDn, type TestCa } from './helpers/slapd.js';
import {
  ALICE, BOB, DAVE, ERIN, GROUP_DN, JURGEN, ODD_SCHEME, PEOPLE, SERVICE_PASSWORD, STAR,
  directoryLdif, schemeUsers, writeLdapConfig,
} from './helpers/ldap-fixture.js';

const LDAP_PORT = 21101;
const LDAPS_PORT = 21102;
/** Nothing listens here: the first URI of the failover test. */
const DEAD_PORT = 21109;

const schemes = schemeUsers();
let ca: TestCa;
let slapd: Slapd;
let scratch: string;
const logLines: string[] = [];
const log: MechanismLog = {
  debug: (message) => logLines.push(`debug: ${message}`),
  debugAlways: (message) => logLines.push(`debug: ${message}`),
  info: (message) => logLines.push(`info: ${message}`),
  error: (message) => logLines.push(`error: ${message}`),
};
let configCount = 0;

before(async () => {
  ca = makeTestCa();
  scratch = mkdtempSync('/tmp/ldap-test-');
  slapd = await Slapd.start({ ldapPort: LDAP_PORT, ldapsPort: LDAPS_PORT, ca, ldif: directoryLdif(schemes), servicePassword: SERVICE_PASSWORD });
});

after(async () => {
  await slapd?.dispose();
  rmSync(scratch, { recursive: true, force: true });
  if (ca) rmSync(ca.directory, { recursive: true, force: true });
});

const plain = (): string => `ldap://127.0.0.1:${LDAP_PORT}/`;

/** A mechanism for `keys` (servers default to plain ldap://), checked the way the primary checks it. */
function mechanism(keys: Record<string, string>, options: { jobTimeoutMs?: number; serviceAccount?: boolean } = {}): Mechanism {
  configCount += 1;
  const path = writeLdapConfig(scratch, `c${configCount}.conf`, { ldap_servers: plain(), ...keys }, options.serviceAccount ?? true);
  ldapMechanism.check({ mechOption: path, log, jobTimeoutMs: options.jobTimeoutMs });
  return ldapMechanism.create({ mechOption: path, log, jobTimeoutMs: options.jobTimeoutMs });
}

async function reply(mech: Mechanism, login: string | Buffer, password: string | Buffer, realm = '', service = 'imap'): Promise<string> {
  const bytes = (value: string | Buffer): Buffer => (typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value));
  const result = await mech.authenticate({ login: bytes(login), password: bytes(password), service: bytes(service), realm: bytes(realm) });
  return result.reply;
}

describe('auth methods', () => {
  for (const method of ['bind', 'custom'] as const) {
    test(`${method}: right password OK, wrong NO, unknown user NO, empty password NO`, async () => {
      const mech = mechanism({ ldap_auth_method: method });
      try {
        assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
        assert.equal(await reply(mech, ALICE.login, 'Wrong-pass-0'), 'NO');
        assert.equal(await reply(mech, 'nobody-here', ALICE.password), 'NO');
        assert.equal(await reply(mech, ALICE.login, ''), 'NO');
        // Right again after a wrong one, and a second user on the same worker connection.
        assert.equal(await reply(mech, BOB.login, BOB.password), 'OK');
        assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      } finally {
        mech.close?.();
      }
    });
  }

  test('fastbind: the filter as DN, no service account', async () => {
    const mech = mechanism({ ldap_auth_method: 'fastbind', ldap_filter: `uid=%u,${PEOPLE}` }, { serviceAccount: false });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      assert.equal(await reply(mech, ALICE.login, 'Wrong-pass-0'), 'NO');
      assert.equal(await reply(mech, ALICE.login, ''), 'NO', 'an empty password must not become an anonymous bind');
      assert.equal(await reply(mech, STAR.login, STAR.password), 'OK', 'DN special characters are escaped (RFC 4514)');
      assert.equal(await reply(mech, `${ALICE.login},ou=x`, ALICE.password), 'NO');
    } finally {
      mech.close?.();
    }
  });

  test('every request checks its password: a password changed in the directory stops working at once (cyrus-sasl#550)', async () => {
    const dn = personDn(BOB.login, PEOPLE);
    const configs: Record<string, string>[] = [{ ldap_auth_method: 'bind' }, { ldap_auth_method: 'fastbind', ldap_filter: `uid=%u,${PEOPLE}` }];
    for (const keys of configs) {
      const mech = mechanism(keys);
      try {
        assert.equal(await reply(mech, BOB.login, BOB.password), 'OK');
        await slapd.setPassword(dn, hash.digest('SSHA', 'sha1', 'Bob-changed-7', hash.salt()));
        assert.equal(await reply(mech, BOB.login, BOB.password), 'NO', keys.ldap_auth_method);
        assert.equal(await reply(mech, BOB.login, 'Bob-changed-7'), 'OK', keys.ldap_auth_method);
      } finally {
        await slapd.setPassword(dn, hash.digest('SSHA', 'sha1', BOB.password, hash.salt()));
        mech.close?.();
      }
    }
  });

  test('wrong service-account password: NO for everyone, logged as a bind failure', async () => {
    configCount += 1;
    const path = writeLdapConfig(scratch, `c${configCount}.conf`, { ldap_servers: plain(), ldap_bind_pw: 'Not-the-reader-pw' });
    const mech = ldapMechanism.create({ mechOption: path, log });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'NO');
      assert.ok(logLines.some((line) => /^debug: Authentication failed for alice: Bind to ldap server failed \(invalid user\/password or insufficient access\) \(-7\)$/.test(line)), logLines.join('\n'));
    } finally {
      mech.close?.();
    }
  });
});

describe('custom: password schemes', () => {
  test('each scheme: right OK, wrong NO', async () => {
    const mech = mechanism({ ldap_auth_method: 'custom' });
    try {
      for (const user of schemes) {
        assert.equal(await reply(mech, user.login, user.password), 'OK', `${user.scheme} right`);
        assert.equal(await reply(mech, user.login, `${user.password}!`), 'NO', `${user.scheme} wrong`);
      }
    } finally {
      mech.close?.();
    }
  });

  test('an unknown {scheme} is never compared as cleartext', async () => {
    const mech = mechanism({ ldap_auth_method: 'custom' });
    try {
      assert.equal(await reply(mech, ODD_SCHEME.login, ODD_SCHEME.stored), 'NO');
      assert.ok(logLines.some((line) => line.includes('unsupported-scheme') && line.includes('{ARGON9}')));
    } finally {
      mech.close?.();
    }
  });
});

describe('groups', () => {
  test('attr: member in, non-member out', async () => {
    const mech = mechanism({ ldap_group_dn: GROUP_DN, ldap_group_attr: 'uniqueMember' });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      assert.equal(await reply(mech, BOB.login, BOB.password), 'NO');
      assert.ok(logLines.some((line) => /^debug: Authentication failed for bob: Group member check failed \(-4\)$/.test(line)));
    } finally {
      mech.close?.();
    }
  });

  test('filter: %D in the group filter, under ldap_group_search_base', async () => {
    const mech = mechanism({
      ldap_group_match_method: 'filter',
      ldap_group_filter: '(&(cn=mailusers)(uniqueMember=%D))',
      ldap_group_search_base: `ou=groups,dc=example,dc=org`,
    });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      assert.equal(await reply(mech, STAR.login, STAR.password), 'OK', 'a DN with escapes, itself escaped into the filter');
      assert.equal(await reply(mech, BOB.login, BOB.password), 'NO');
    } finally {
      mech.close?.();
    }
  });

  test('fastbind + attr group: checked on the user\'s own connection', async () => {
    const mech = mechanism({ ldap_auth_method: 'fastbind', ldap_filter: `uid=%u,${PEOPLE}`, ldap_group_dn: GROUP_DN }, { serviceAccount: false });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      assert.equal(await reply(mech, BOB.login, BOB.password), 'NO');
    } finally {
      mech.close?.();
    }
  });
});

describe('tokens and escaping', () => {
  test('%u with a realm as -r makes it (login@realm), %U and %d, ldap_default_realm', async () => {
    const byMail = mechanism({ ldap_filter: '(mail=%u)' });
    const byDomain = mechanism({ ldap_search_base: 'ou=%d,dc=example,dc=org', ldap_filter: '(uid=%U)' });
    const byRealm = mechanism({ ldap_filter: '(mail=%U%R)' });
    const byDefaultRealm = mechanism({ ldap_filter: '(mail=%U@%r)', ldap_default_realm: DAVE.realm });
    const byLabels = mechanism({ ldap_search_base: 'ou=%2.%1,dc=example,dc=org', ldap_filter: '(&(uid=%U)(objectClass=inetOrgPerson))' });
    try {
      assert.equal(await reply(byMail, `${DAVE.login}@${DAVE.realm}`, DAVE.password, DAVE.realm), 'OK');
      assert.equal(await reply(byMail, DAVE.login, DAVE.password, DAVE.realm), 'NO', 'without -r the realm is not in %u');
      assert.equal(await reply(byDomain, `${ERIN.login}@${ERIN.domain}`, ERIN.password), 'OK');
      assert.equal(await reply(byDomain, ERIN.login, ERIN.password), 'NO', '%d is empty without @');
      assert.equal(await reply(byRealm, DAVE.login, DAVE.password, DAVE.realm), 'OK');
      assert.equal(await reply(byDefaultRealm, DAVE.login, DAVE.password), 'OK');
      assert.equal(await reply(byLabels, `${ERIN.login}@${ERIN.domain}`, ERIN.password), 'OK');
    } finally {
      for (const mech of [byMail, byDomain, byRealm, byDefaultRealm, byLabels]) mech.close?.();
    }
  });

  test('a filter without outer parentheses is taken, as libldap takes it', async () => {
    const mech = mechanism({ ldap_filter: 'uid=%u' });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
    } finally {
      mech.close?.();
    }
  });

  test('a filter that matches two entries is not a match (the default size limit 1 would take the first)', async () => {
    const mech = mechanism({ ldap_filter: `(|(uid=%u)(uid=${BOB.login}))` });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'NO');
      assert.ok(logLines.some((line) => line.includes('more than one entry found')));
      assert.equal(await reply(mech, BOB.login, BOB.password), 'OK', 'one entry: fine');
    } finally {
      mech.close?.();
    }
  });

  test('a login of *, or with ( ) \\ and 8-bit bytes, matches only itself', async () => {
    for (const method of ['bind', 'custom']) {
      const mech = mechanism({ ldap_auth_method: method, ldap_size_limit: '0' });
      try {
        assert.equal(await reply(mech, '*', ALICE.password), 'NO');
        assert.equal(await reply(mech, 'a*', ALICE.password), 'NO');
        assert.equal(await reply(mech, '*)(uid=*', ALICE.password), 'NO');
        assert.equal(await reply(mech, 'alice)(|(uid=*', ALICE.password), 'NO');
        assert.equal(await reply(mech, STAR.login, STAR.password), 'OK');
        assert.equal(await reply(mech, JURGEN.login, JURGEN.password), 'OK');
        assert.equal(await reply(mech, Buffer.from('j\xfcrgen', 'latin1'), JURGEN.password), 'NO', 'latin-1 bytes are not the UTF-8 login');
        assert.equal(await reply(mech, JURGEN.login, Buffer.from('J\xfcrgen-pass-4', 'latin1')), 'NO');
      } finally {
        mech.close?.();
      }
    }
  });
});

describe('servers, TLS, failures', () => {
  test('ldaps:// with the test CA; StartTLS; ldapi://', async () => {
    const ldaps = mechanism({ ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_file: ca.caFile });
    const startTls = mechanism({ ldap_servers: `ldap://localhost:${LDAP_PORT}/`, ldap_start_tls: 'yes', ldap_tls_cacert_file: ca.caFile });
    const caDir = mkdtempSync(join(scratch, 'cadir-'));
    writeFileSync(join(caDir, 'test-ca.pem'), await import('node:fs').then((fs) => fs.readFileSync(ca.caFile)));
    const withDir = mechanism({ ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_dir: caDir, ldap_tls_cert: ca.clientCert, ldap_tls_key: ca.clientKey, ldap_tls_ciphers: 'HIGH:!aNULL' });
    const ldapi = mechanism({ ldap_servers: slapd.ldapiUri });
    try {
      for (const mech of [ldaps, startTls, withDir, ldapi]) {
        assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
        assert.equal(await reply(mech, ALICE.login, 'Wrong-pass-0'), 'NO');
      }
    } finally {
      for (const mech of [ldaps, startTls, withDir, ldapi]) mech.close?.();
    }
  });

  test('a certificate for another name, or from an unknown CA, is refused; allowed with ldap_tls_check_peer off', async () => {
    const wrongName = mechanism({ ldap_servers: `ldaps://127.0.0.1:${LDAPS_PORT}/`, ldap_tls_cacert_file: ca.caFile });
    const unknownCa = mechanism({ ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_file: ca.otherCaFile });
    const startTlsUnknownCa = mechanism({ ldap_servers: `ldap://localhost:${LDAP_PORT}/`, ldap_start_tls: 'on', ldap_tls_cacert_file: ca.otherCaFile });
    const noCheck = mechanism({ ldap_servers: `ldaps://127.0.0.1:${LDAPS_PORT}/`, ldap_tls_check_peer: 'no' });
    try {
      assert.equal(await reply(wrongName, ALICE.login, ALICE.password), 'NO');
      assert.ok(logLines.some((line) => /altnames|Hostname\/IP does not match/i.test(line)), 'the name mismatch is logged');
      assert.equal(await reply(unknownCa, ALICE.login, ALICE.password), 'NO');
      assert.equal(await reply(startTlsUnknownCa, ALICE.login, ALICE.password), 'NO');
      assert.equal(await reply(noCheck, ALICE.login, ALICE.password), 'OK');
    } finally {
      for (const mech of [wrongName, unknownCa, startTlsUnknownCa, noCheck]) mech.close?.();
    }
  });

  test('failover: a dead first URI, then the second answers', async () => {
    const mech = mechanism({ ldap_servers: `ldap://127.0.0.1:${DEAD_PORT}/ ldap://127.0.0.1:${LDAP_PORT}/` });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      assert.equal(await reply(mech, ALICE.login, 'Wrong-pass-0'), 'NO');
    } finally {
      mech.close?.();
    }
  });

  test('server down, then back: the next request succeeds on a rebuilt connection', async () => {
    const mech = mechanism({});
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      await slapd.stop();
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'NO');
      assert.ok(logLines.some((line) => line.includes('Retrying authentication')));
      assert.ok(logLines.some((line) => /Retry condition \(ldap server connection reset or broken\) \(-3\)/.test(line)));
      await slapd.run();
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
    } finally {
      mech.close?.();
    }
  });

  test('server stalled (SIGSTOP): NO within the deadline, then fine after SIGCONT', async () => {
    const mech = mechanism({ ldap_timeout: '1' }, { jobTimeoutMs: 4_000 });
    try {
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
      slapd.pause();
      const started = Date.now();
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'NO');
      const took = Date.now() - started;
      // The mechanism's own deadline is 3 s (1 s below the job timeout); allow for a loaded
      // machine's late timers, but the answer must come before the job timeout.
      assert.ok(took < 3_800, `answered after ${took} ms: the mechanism's deadline is 3000 ms, the job timeout 4000 ms`);
      slapd.resume();
      assert.equal(await reply(mech, ALICE.login, ALICE.password), 'OK');
    } finally {
      slapd.resume();
      mech.close?.();
    }
  });
});

test('ldap_use_sasl: a SASL PLAIN bind as the user over ldaps://, group check through "Who am I?"', async () => {
  const clear = schemes.find((user) => user.scheme === 'clear')!;
  const plainSasl = mechanism({ ldap_use_sasl: 'yes', ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_file: ca.caFile }, { serviceAccount: false });
  const withGroup = mechanism({ ldap_use_sasl: 'yes', ldap_mech: 'plain', ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_file: ca.caFile, ldap_group_dn: GROUP_DN }, { serviceAccount: false });
  try {
    assert.equal(await reply(plainSasl, clear.login, clear.password), 'OK');
    assert.equal(await reply(plainSasl, clear.login, `${clear.password}!`), 'NO');
    assert.equal(await reply(plainSasl, 'nobody-here', clear.password), 'NO');
    assert.equal(await reply(plainSasl, clear.login, ''), 'NO');
    assert.equal(await reply(withGroup, clear.login, clear.password), 'OK');
  } finally {
    plainSasl.close?.();
    withGroup.close?.();
  }
});

describe('config refused at start, naming the key', () => {
  const refused: [Record<string, string>, RegExp][] = [
    [{ ldap_use_sasl: 'yes', ldap_mech: 'EXTERNAL' }, /ldap_mech: EXTERNAL authenticates this daemon/],
    [{ ldap_use_sasl: 'yes', ldap_sasl_mech: 'DIGEST-MD5' }, /ldap_sasl_mech: "DIGEST-MD5" is not supported: only PLAIN/],
    [{ ldap_use_sasl: 'yes', ldap_id: 'svc' }, /ldap_id: not supported/],
    [{ ldap_mech: 'PLAIN' }, /ldap_mech: has no effect without ldap_use_sasl/],
    [{ ldap_referrals: 'on' }, /ldap_referrals: chasing referrals is not supported/],
    [{ ldap_version: '2' }, /ldap_version: "2" is not supported/],
    [{ ldap_auth_method: 'kerberos' }, /ldap_auth_method: "kerberos" is not one of bind, fastbind, custom/],
    [{ ldap_scope: 'subtree' }, /ldap_scope/],
    [{ ldap_timeout: 'soon' }, /ldap_timeout/],
    [{ ldap_servers: 'http://x/' }, /ldap_servers: "http:\/\/x\/" is not an ldap/],
    [{ ldap_tls_ciphers: 'NOT-A-CIPHER' }, /ldap_tls_ciphers/],
    [{ ldap_tls_cacert_file: '/nonexistent/ca.pem' }, /ldap_tls_cacert_file: cannot read/],
    [{ ldap_tls_cert: '/nonexistent/c.pem' }, /ldap_tls_cert and ldap_tls_key go together/],
    [{ ldap_debug: '255' }, /ldap_debug/],
    [{ ldap_filter: '(ui d=%u)' }, /ldap_filter: not a valid LDAP filter/],
    [{ ldap_group_filter: '(&(cn=x)(member=%D)' }, /ldap_group_filter: not a valid LDAP filter \(unbalanced/],
  ];
  for (const [keys, message] of refused) {
    test(Object.keys(keys).join(','), () => {
      configCount += 1;
      const path = writeLdapConfig(scratch, `c${configCount}.conf`, keys);
      assert.throws(() => ldapMechanism.check({ mechOption: path, log }), message);
    });
  }

  test('an invalid file (a line without a colon) and a missing file', () => {
    const path = join(scratch, 'broken.conf');
    writeFileSync(path, 'ldap_servers: ldap://localhost/\nnot a key value line\n');
    assert.throws(() => ldapMechanism.check({ mechOption: path, log }), /broken\.conf:2: no ":"/);
    assert.throws(() => ldapMechanism.check({ mechOption: join(scratch, 'absent.conf'), log }), /cannot be read \(ENOENT\)/);
  });

  test('a --job-timeout too short for any request', () => {
    const path = writeLdapConfig(scratch, 'short.conf', {});
    assert.throws(() => ldapMechanism.check({ mechOption: path, log, jobTimeoutMs: 1_000 }), /--job-timeout/);
  });
});

test('no password or bind password in any log line', () => {
  const text = logLines.join('\n');
  assert.ok(text.length > 0);
  for (const secret of [ALICE.password, BOB.password, STAR.password, JURGEN.password, DAVE.password, ERIN.password, SERVICE_PASSWORD, 'Not-the-reader-pw', 'Bob-changed-7', ...schemes.map((user) => user.password)]) {
    assert.equal(text.includes(secret), false, `a secret is in the log: ${secret}`);
  }
});
