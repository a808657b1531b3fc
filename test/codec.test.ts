/** The wire codec, with hand-written bytes (no sockets). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestDecoder, cString, decodeReply, encodeReply, encodeRequest, type DecodeResult } from '../src/protocol/codec.js';

/** `testsaslauthd -u good -p secret` as the C tool sends it (saslauthd.md §1.2). */
const GOOD_SECRET = Buffer.from('0004676f6f6400067365637265740004696d61700000', 'hex');

function feed(bytes: Buffer, pieceSize = bytes.length): DecodeResult[] {
  const decoder = new RequestDecoder();
  const results: DecodeResult[] = [];
  for (let offset = 0; offset < bytes.length; offset += pieceSize) {
    results.push(decoder.push(bytes.subarray(offset, offset + pieceSize)));
  }
  return results;
}

test('decodes the C testsaslauthd request in one chunk', () => {
  const [result] = feed(GOOD_SECRET);
  assert.equal(result?.kind, 'request');
  if (result?.kind !== 'request') return;
  assert.equal(result.request.login.toString(), 'good');
  assert.equal(result.request.password.toString(), 'secret');
  assert.equal(result.request.service.toString(), 'imap');
  assert.equal(result.request.realm.length, 0);
  assert.equal(result.request.clientAddress, undefined);
});

test('one byte per write gives the same request, complete only at the last byte', () => {
  const results = feed(GOOD_SECRET, 1);
  assert.equal(results.length, GOOD_SECRET.length);
  assert.ok(results.slice(0, -1).every((result) => result.kind === 'incomplete'));
  const last = results.at(-1);
  assert.equal(last?.kind, 'request');
  if (last?.kind === 'request') assert.equal(last.request.password.toString(), 'secret');
});

test('encodeRequest produces the bytes the C client sends', () => {
  assert.deepEqual(encodeRequest(['good', 'secret', 'imap', ''].map((s) => Buffer.from(s))), GOOD_SECRET);
});

test('a 5th field that arrived with the request is the client address', () => {
  const bytes = encodeRequest(['u', 'p', 's', 'r', '192.0.2.7;5123'].map((s) => Buffer.from(s)));
  const [result] = feed(bytes);
  assert.equal(result?.kind, 'request');
  if (result?.kind === 'request') assert.equal(result.request.clientAddress?.toString(), '192.0.2.7;5123');
});

test('the 5th field is never waited for: 4 fields complete the request', () => {
  const four = encodeRequest(['u', 'p', 's', 'r'].map((s) => Buffer.from(s)));
  const fifth = encodeRequest([Buffer.from('192.0.2.7;5123')]);
  const decoder = new RequestDecoder();
  const result = decoder.push(four);
  assert.equal(result.kind, 'request');
  if (result.kind === 'request') assert.equal(result.request.clientAddress, undefined);
  // a 5th field arriving later is not part of it
  assert.equal(decoder.push(fifth).kind, 'incomplete');
});

test('a partial 5th field in the same chunk is ignored, not waited for', () => {
  const bytes = Buffer.concat([encodeRequest(['u', 'p', 's', 'r'].map((s) => Buffer.from(s))), Buffer.from([0, 10, 0x31])]);
  const [result] = feed(bytes);
  assert.equal(result?.kind, 'request');
  if (result?.kind === 'request') assert.equal(result.request.clientAddress, undefined);
});

test('trailingBytes counts what came after the request (and its 5th field) in the same data', () => {
  const four = encodeRequest(['u', 'p', 's', 'r'].map((s) => Buffer.from(s)));
  const five = encodeRequest(['u', 'p', 's', 'r', '192.0.2.7;5123'].map((s) => Buffer.from(s)));
  const trailing = (bytes: Buffer): number => {
    const [result] = feed(bytes);
    assert.equal(result?.kind, 'request');
    return result?.kind === 'request' ? result.trailingBytes : -1;
  };
  assert.equal(trailing(four), 0);
  assert.equal(trailing(five), 0);
  assert.equal(trailing(Buffer.concat([four, Buffer.from([0, 10, 0x31])])), 3, 'a partial 5th field is trailing');
  assert.equal(trailing(Buffer.concat([five, Buffer.from('xyz')])), 3);
  // A second request in the same write: its first field reads as a 5th field, the rest trails.
  assert.equal(trailing(Buffer.concat([four, four])), four.length - 3);
});

test('256-byte fields are accepted, 257 bytes are refused by field name', () => {
  const max = Buffer.alloc(256, 0x79);
  const [ok] = feed(encodeRequest([max, max, max, max]));
  assert.equal(ok?.kind, 'request');
  if (ok?.kind === 'request') assert.equal(ok.request.password.length, 256);

  const tooLong = Buffer.alloc(257, 0x79);
  const names = ['login', 'password', 'service', 'realm'];
  for (let index = 0; index < 4; index++) {
    const fields = [max, max, max, max];
    fields[index] = tooLong;
    const [result] = feed(encodeRequest(fields));
    assert.deepEqual(result, { kind: 'field-too-long', field: names[index], length: 257 });
  }
});

test('the length check needs only the 2-byte prefix: a 65535 prefix is refused at once', () => {
  const results = feed(Buffer.from([0xff, 0xff]));
  assert.deepEqual(results[0], { kind: 'field-too-long', field: 'login', length: 65535 });
});

test('empty login and password are decoded (the daemon answers them), as empty buffers', () => {
  const [result] = feed(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
  assert.equal(result?.kind, 'request');
  if (result?.kind === 'request') {
    assert.equal(result.request.login.length, 0);
    assert.equal(result.request.password.length, 0);
  }
});

test('EOF inside a field leaves the request incomplete', () => {
  const cut = GOOD_SECRET.subarray(0, 9); // inside the password
  const results = feed(cut);
  assert.deepEqual(results, [{ kind: 'incomplete' }]);
});

test('bytes of every value 0x01..0xff pass through unchanged', () => {
  const all = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
  const [result] = feed(encodeRequest([Buffer.from('u'), all, Buffer.from('s'), Buffer.alloc(0)]));
  assert.equal(result?.kind, 'request');
  if (result?.kind === 'request') assert.deepEqual(result.request.password, all);
});

test('cString cuts at the first NUL, as the C mechanisms see a field', () => {
  assert.deepEqual(cString(Buffer.from('go\0od')), Buffer.from('go'));
  assert.deepEqual(cString(Buffer.from('good')), Buffer.from('good'));
  assert.equal(cString(Buffer.from('\0x')).length, 0);
});

test('replies: u16 length then text, no NUL', () => {
  assert.deepEqual(encodeReply('OK'), Buffer.from([0, 2, 0x4f, 0x4b]));
  assert.deepEqual(encodeReply('NO '), Buffer.from([0, 3, 0x4e, 0x4f, 0x20]));
  assert.deepEqual(encodeReply('NO NULL login received').subarray(0, 2), Buffer.from([0, 0x16]));
  assert.deepEqual(encodeReply('NO NULL password received').subarray(0, 2), Buffer.from([0, 0x19]));
  assert.equal(encodeReply('N'.repeat(5000)).readUInt16BE(0), 1023);
  const decoded = decodeReply(Buffer.from([0, 2, 0x4f, 0x4b, 9]));
  assert.equal(decoded?.text.toString(), 'OK');
  assert.deepEqual(decoded?.rest, Buffer.from([9]));
  assert.equal(decodeReply(Buffer.from([0, 2, 0x4f])), undefined);
});

test('dispose zeroes what an abandoned request left behind, not a delivered request', () => {
  const abandoned = new RequestDecoder();
  const head = encodeRequest([Buffer.from('good'), Buffer.from('Secret-left')]);
  assert.equal(abandoned.push(Buffer.concat([head, Buffer.from([0x01, 0x2c, 0x61])])).kind, 'field-too-long');
  const fields = (abandoned as unknown as { fields: Buffer[] }).fields;
  assert.equal(fields[1]?.toString(), 'Secret-left');
  abandoned.dispose();
  assert.ok(fields[1]?.every((byte) => byte === 0), 'the password copy is zeroed');

  const delivered = new RequestDecoder();
  const result = delivered.push(GOOD_SECRET);
  delivered.dispose();
  assert.equal(result.kind === 'request' && result.request.password.toString(), 'secret', 'the owner decides');
});
