/**
 * The `pam` mechanism against real Linux-PAM through pam_wrapper + pam_matrix (a private
 * service directory and password file, nothing in /etc changes). pam_wrapper is loaded
 * as the PAM library through SASLAUTHD_PAM_LIBRARY, so the environment must be in place
 * before the first request. Keep every pam_wrapper test in this one file, run serially:
 * pam_wrapper's /tmp/pam.<char> directories are shared machine-wide.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { converse, pamMechanism, type PamTransaction } from '../src/mechanisms/pam.js';
import type { AuthResult, Mechanism, MechanismLog, MechanismOptions } from '../src/mechanisms/types.js';
import { PAM_RESPONSE_RESP_OFFSET, PAM_RESPONSE_SIZE, POINTER_SIZE, type Pointer } from '../src/native/libpam.js';

const WRAPPER = '/usr/lib/x86_64-linux-gnu/libpam_wrapper.so';
const MATRIX = '/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so';
const CHATTY = '/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_chatty.so';
const SECURITY = '/usr/lib/x86_64-linux-gnu/security';

/** Bytes in 0x21..0xFF without ':' (pam_matrix's field separator). */
function longPassword(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    const b = ((i * 37) % 223) + 0x21;
    bytes[i] = b === 0x3a ? 0x3b : b;
  }
  return bytes;
}

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const PW_256 = longPassword(256);
const PW_1000 = longPassword(1000);
const PW_BINARY = Buffer.from([0xff, 0xfe, 0x80, 0x41, 0xc3]);
const LOGIN_LATIN1 = B('j\xe9r\xf4me');
const SECRETS: Buffer[] = [B('secret'), B('pw-rh'), B('pw-fd'), B('pw-chat'), B('other-pw'), PW_256, PW_1000, PW_BINARY];

let dir = '';
/** Lines since the last reset (tests clear it) and every line of the run. */
const lines: string[] = [];
const allLines: string[] = [];
const record = (message: string): void => {
  lines.push(message);
  allLines.push(message);
};
const log: MechanismLog = { debug: record, debugAlways: record, info: record, error: record };
const options: MechanismOptions = { mechOption: undefined, log };
let mech: Mechanism;

function passdbLine(user: Buffer, password: Buffer, service: string): Buffer {
  return Buffer.concat([user, B(':'), password, B(`:${service}\n`)]);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pam-mech-'));
  const passdb = join(dir, 'passdb');
  const svc = join(dir, 'services');
  mkdirSync(svc);
  writeFileSync(
    passdb,
    Buffer.concat([
      passdbLine(B('alice'), B('secret'), 'matrix'),
      passdbLine(B('carol'), B('secret'), 'elsewhere'),
      passdbLine(B('dave'), B('secret'), 'denyacct'),
      passdbLine(B('long'), PW_256, 'matrix'),
      passdbLine(B('longer'), PW_1000, 'matrix'),
      passdbLine(B('bin'), PW_BINARY, 'matrix'),
      passdbLine(LOGIN_LATIN1, B('secret'), 'matrix'),
      passdbLine(B('echoer'), B('echoer'), 'echo'),
      passdbLine(B('echo2'), B('other-pw'), 'echo'),
      passdbLine(B('chat'), B('pw-chat'), 'chatty'),
      passdbLine(B('rh'), B('pw-rh'), 'rhost'),
      passdbLine(B('fd'), B('pw-fd'), 'faildelay'),
    ]),
  );
  const matrix = `${MATRIX} passdb=${passdb}`;
  const services: Record<string, string[]> = {
    matrix: [`auth required ${matrix}`, `account required ${matrix}`],
    echo: [`auth required ${matrix} echo`, `account required ${matrix}`],
    denyacct: [`auth required ${matrix}`, `account required ${SECURITY}/pam_deny.so`],
    chatty: [`auth required ${CHATTY} num_lines=2 info`, `auth required ${matrix} verbose`, `account required ${matrix}`],
    rhost: [`auth requisite ${SECURITY}/pam_succeed_if.so rhost = 192.0.2.7`, `auth required ${matrix}`, `account required ${matrix}`],
    faildelay: [`auth required ${SECURITY}/pam_faildelay.so delay=2000000`, `auth required ${matrix}`, `account required ${matrix}`],
  };
  for (const [name, body] of Object.entries(services)) writeFileSync(join(svc, name), body.join('\n') + '\n');
  // No "other" file: an unknown service makes pam_start itself fail.
  process.env.PAM_WRAPPER = '1';
  process.env.PAM_WRAPPER_SERVICE_DIR = svc;
});

after(() => {
  mech?.close?.();
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function auth(login: Buffer, password: Buffer, service: string, remoteHost?: string): AuthResult {
  const result = mech.authenticate({ login, password, service: B(service), realm: B(''), remoteHost });
  assert.ok(!(result instanceof Promise), 'the pam mechanism is synchronous');
  return result;
}

test('check() explains a library that cannot be loaded', () => {
  process.env.SASLAUTHD_PAM_LIBRARY = join(tmpdir(), 'no-such-dir', 'libpam.so.0');
  assert.throws(() => pamMechanism.check(options), /cannot load PAM library ".*no-such-dir\/libpam\.so\.0".*SASLAUTHD_PAM_LIBRARY/);
});

test('check() explains a library without the PAM symbols', () => {
  process.env.SASLAUTHD_PAM_LIBRARY = 'libc.so.6';
  assert.throws(() => pamMechanism.check(options), /cannot resolve pam_start in "libc\.so\.6"/);
});

test('check() loads pam_wrapper through SASLAUTHD_PAM_LIBRARY', () => {
  assert.ok(existsSync(WRAPPER), `${WRAPPER} (Debian package libpam-wrapper) is needed`);
  process.env.SASLAUTHD_PAM_LIBRARY = WRAPPER;
  pamMechanism.check(options);
  mech = pamMechanism.create(options);
});

test('good password → OK', () => {
  assert.deepEqual(auth(B('alice'), B('secret'), 'matrix'), { reply: 'OK' });
});

test('wrong password → NO PAM auth error, with the pam_strerror text logged', () => {
  lines.length = 0;
  assert.deepEqual(auth(B('alice'), B('secreT'), 'matrix'), { reply: 'NO PAM auth error' });
  assert.ok(lines.includes('DEBUG: auth_pam: pam_authenticate failed: Authentication failure'), lines.join('\n'));
});

test('unknown user → NO PAM auth error', () => {
  assert.equal(auth(B('mallory'), B('secret'), 'matrix').reply, 'NO PAM auth error');
});

test('account refused by pam_matrix (service mismatch) → NO PAM acct error', () => {
  lines.length = 0;
  assert.deepEqual(auth(B('carol'), B('secret'), 'matrix'), { reply: 'NO PAM acct error' });
  assert.ok(lines.includes('DEBUG: auth_pam: pam_acct_mgmt failed: Permission denied'), lines.join('\n'));
});

test('account refused by pam_deny → NO PAM acct error', () => {
  assert.deepEqual(auth(B('dave'), B('secret'), 'denyacct'), { reply: 'NO PAM acct error' });
});

test('unknown service without "other" → NO PAM start error', () => {
  lines.length = 0;
  assert.deepEqual(auth(B('alice'), B('secret'), 'no-such-service'), { reply: 'NO PAM start error' });
  assert.ok(lines.some((l) => l.startsWith('DEBUG: auth_pam: pam_start failed: ')), lines.join('\n'));
});

test('an empty service goes to PAM without crashing', () => {
  assert.match(auth(B('alice'), B('secret'), '').reply, /^NO PAM (start|auth) error$/);
});

test('256-byte password accepted; last byte changed refused', () => {
  assert.equal(auth(B('long'), PW_256, 'matrix').reply, 'OK');
  const changed = Buffer.from(PW_256);
  changed[255] = changed[255]! ^ 0x01;
  assert.equal(auth(B('long'), changed, 'matrix').reply, 'NO PAM auth error');
  assert.equal(auth(B('long'), PW_256.subarray(0, 255), 'matrix').reply, 'NO PAM auth error');
});

test('1000-byte password is not truncated', () => {
  assert.equal(auth(B('longer'), PW_1000, 'matrix').reply, 'OK');
  const changed = Buffer.from(PW_1000);
  changed[999] = changed[999]! ^ 0x01;
  assert.equal(auth(B('longer'), changed, 'matrix').reply, 'NO PAM auth error');
});

test('non-UTF-8 password bytes reach PAM byte-exact', () => {
  assert.equal(auth(B('bin'), PW_BINARY, 'matrix').reply, 'OK');
  // What a UTF-8 round trip would have produced must not match.
  assert.equal(auth(B('bin'), Buffer.from(PW_BINARY.toString('utf8'), 'utf8'), 'matrix').reply, 'NO PAM auth error');
});

test('non-UTF-8 login bytes reach PAM byte-exact', () => {
  assert.equal(auth(LOGIN_LATIN1, B('secret'), 'matrix').reply, 'OK');
  assert.equal(auth(Buffer.from('j\xe9r\xf4me', 'utf8'), B('secret'), 'matrix').reply, 'NO PAM auth error');
});

test('a password with a NUL byte is refused, not truncated', () => {
  assert.equal(auth(B('alice'), B('secret\0junk'), 'matrix').reply, 'NO PAM auth error');
});

test('PROMPT_ECHO_ON is answered with the login', () => {
  // pam_matrix "echo" asks for the password with ECHO_ON.
  assert.equal(auth(B('echoer'), B('anything'), 'echo').reply, 'OK');
  assert.equal(auth(B('echo2'), B('other-pw'), 'echo').reply, 'NO PAM auth error');
});

test('TEXT_INFO and ERROR_MSG are logged, not answered', () => {
  lines.length = 0;
  assert.equal(auth(B('chat'), B('pw-chat'), 'chatty').reply, 'OK');
  assert.ok(lines.includes('PAM message: Authentication succeeded'), lines.join('\n'));
  lines.length = 0;
  assert.equal(auth(B('chat'), B('wrong'), 'chatty').reply, 'NO PAM auth error');
  assert.ok(lines.includes('PAM message: Authentication failed'), lines.join('\n'));
});

test('PAM_RHOST reaches PAM (pam_succeed_if rhost = 192.0.2.7)', () => {
  assert.equal(auth(B('rh'), B('pw-rh'), 'rhost', '192.0.2.7').reply, 'OK');
  assert.equal(auth(B('rh'), B('pw-rh'), 'rhost', '192.0.2.8').reply, 'NO PAM auth error');
  assert.equal(auth(B('rh'), B('pw-rh'), 'rhost').reply, 'NO PAM auth error');
});

test('fail delay (pam_faildelay 2 s) is returned, not slept', () => {
  const started = process.hrtime.bigint();
  const result = auth(B('fd'), B('wrong'), 'faildelay');
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.equal(result.reply, 'NO PAM auth error');
  assert.ok(result.failDelayMs !== undefined, 'failDelayMs is set');
  // Linux-PAM randomises the requested delay by up to ±50 % (libpam/pam_delay.c).
  assert.ok(result.failDelayMs >= 1000 && result.failDelayMs <= 3000, `failDelayMs ${result.failDelayMs}`);
  // Below the shortest delay PAM could have slept.
  assert.ok(elapsedMs < 1000, `PAM slept: ${elapsedMs} ms`);
  // No delay is reported on success.
  assert.deepEqual(auth(B('fd'), B('pw-fd'), 'faildelay'), { reply: 'OK' });
});

test('callbacks are reused, not leaked (koffi allows 8192 registrations)', () => {
  for (let i = 0; i < 9000; i++) {
    const { reply } = auth(B('alice'), i % 2 === 0 ? B('secret') : B('nope'), 'matrix');
    assert.equal(reply, i % 2 === 0 ? 'OK' : 'NO PAM auth error', `request ${i}`);
  }
});

test('a closed mechanism can be used again by a new instance', () => {
  mech.close?.();
  mech = pamMechanism.create(options);
  assert.equal(auth(B('alice'), B('secret'), 'matrix').reply, 'OK');
});

// --- the conversation function alone, with messages built in native memory ---

const libc = koffi.load('libc.so.6');
const cFree = libc.func('free', 'void', ['void *']);
const MessageStruct = koffi.struct({ msg_style: 'int', msg: 'const char *' });

interface BuiltMessages {
  readonly array: Pointer;
  readonly resp: Pointer;
  release(): void;
}

function buildMessages(messages: Array<{ style: number; text: string }>): BuiltMessages {
  const structs = messages.map(({ style, text }) => {
    const m = koffi.alloc(MessageStruct, 1) as Pointer;
    koffi.encode(m, MessageStruct, { msg_style: style, msg: text });
    return m;
  });
  const array = koffi.alloc('void *', structs.length) as Pointer;
  structs.forEach((m, i) => koffi.encode(array, i * POINTER_SIZE, 'void *', m));
  const resp = koffi.alloc('void *', 1) as Pointer;
  koffi.encode(resp, 'void *', null);
  return {
    array,
    resp,
    release() {
      for (const m of structs) koffi.free(m);
      koffi.free(array);
      koffi.free(resp);
    },
  };
}

function transaction(): PamTransaction {
  return { id: 1, login: B('alice'), password: PW_BINARY, log, failDelayUsec: 0 };
}

test('conversation: several messages in one call, Linux-PAM pointer-array layout', () => {
  lines.length = 0;
  const built = buildMessages([
    { style: 4, text: 'hello' },
    { style: 1, text: 'Password: ' },
    { style: 2, text: 'login: ' },
    { style: 3, text: 'oops' },
  ]);
  try {
    assert.equal(converse(transaction(), 4, built.array, built.resp), 0);
    const responses = koffi.decode(built.resp, 'void *') as Pointer;
    assert.notEqual(responses, null);
    const read = (i: number): Pointer | null =>
      koffi.decode(responses, i * PAM_RESPONSE_SIZE + PAM_RESPONSE_RESP_OFFSET, 'void *') as Pointer | null;
    const bytes = (p: Pointer, n: number): Buffer => Buffer.from(koffi.decode(p, 'uint8_t', n) as Uint8Array);
    assert.equal(read(0), null);
    assert.equal(read(3), null);
    const pw = read(1);
    const login = read(2);
    assert.ok(pw !== null && login !== null);
    assert.deepEqual(bytes(pw, PW_BINARY.length + 1), Buffer.concat([PW_BINARY, Buffer.from([0])]));
    assert.deepEqual(bytes(login, 6), B('alice\0'));
    const retcodeOffset = PAM_RESPONSE_RESP_OFFSET + POINTER_SIZE;
    for (let i = 0; i < 4; i++) assert.equal(koffi.decode(responses, i * PAM_RESPONSE_SIZE + retcodeOffset, 'int'), 0, 'resp_retcode');
    cFree(pw);
    cFree(login);
    cFree(responses);
    assert.deepEqual(lines, ['PAM message: hello', 'PAM message: oops']);
  } finally {
    built.release();
  }
});

test('conversation: an unknown message style → PAM_CONV_ERR and no responses', () => {
  const built = buildMessages([
    { style: 1, text: 'Password: ' },
    { style: 7, text: 'binary' },
  ]);
  try {
    assert.equal(converse(transaction(), 2, built.array, built.resp), 19);
    assert.equal(koffi.decode(built.resp, 'void *'), null);
  } finally {
    built.release();
  }
});

test('conversation: bad counts are refused', () => {
  const built = buildMessages([{ style: 1, text: 'Password: ' }]);
  try {
    assert.equal(converse(transaction(), 0, built.array, built.resp), 19);
    assert.equal(converse(transaction(), 33, built.array, built.resp), 19);
    assert.equal(converse(transaction(), 1, null, built.resp), 19);
    assert.equal(koffi.decode(built.resp, 'void *'), null);
  } finally {
    built.release();
  }
});

test('no secret ever reached the log', () => {
  assert.ok(allLines.length > 0);
  for (const line of allLines) {
    for (const secret of SECRETS) {
      assert.ok(!Buffer.from(line, 'latin1').includes(secret), `secret in log line: ${line}`);
      assert.ok(!line.includes(secret.toString('latin1')), `secret in log line: ${line}`);
    }
  }
});

