/** Property-based tests of the wire codec (fast-check): any split, any bytes, never a throw. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_FIELD_BYTES, REQUEST_FIELDS, RequestDecoder, encodeRequest, type DecodeResult } from '../src/protocol/codec.js';

const field = fc.uint8Array({ maxLength: MAX_FIELD_BYTES }).map((bytes) => Buffer.from(bytes));
const fourFields = fc.tuple(field, field, field, field);

/** Splits bytes at the given cut points (sorted, deduplicated). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  pieces.push(bytes.subarray(start));
  return pieces;
}

function decodeAll(pieces: Buffer[]): DecodeResult[] {
  const decoder = new RequestDecoder();
  return pieces.map((piece) => decoder.push(Buffer.from(piece)));
}

test('any 4 fields of 0..256 bytes, split anywhere, decode to exactly those fields, once', () => {
  fc.assert(
    fc.property(fourFields, fc.array(fc.nat(), { maxLength: 12 }), (fields, cuts) => {
      const bytes = encodeRequest(fields);
      const results = decodeAll(split(bytes, cuts));
      const complete = results.filter((result) => result.kind === 'request');
      assert.equal(complete.length, 1);
      const last = results.findLastIndex((result) => result.kind === 'request');
      // the request completes exactly with the piece that carries its last byte
      assert.ok(results.slice(0, last).every((result) => result.kind === 'incomplete'));
      const request = (complete[0] as Extract<DecodeResult, { kind: 'request' }>).request;
      assert.deepEqual([request.login, request.password, request.service, request.realm], fields);
    }),
    { numRuns: 500 },
  );
});

test('a 5th field is taken only when complete in the same bytes as the request', () => {
  fc.assert(
    fc.property(fourFields, field, fc.integer({ min: 0, max: 300 }), (fields, address, keep) => {
      const four = encodeRequest(fields);
      const five = encodeRequest([...fields, address]);
      const sent = five.subarray(0, Math.min(five.length, four.length + keep));
      const [result] = decodeAll([sent]);
      assert.equal(result?.kind, 'request');
      if (result?.kind !== 'request') return;
      if (sent.length === five.length) assert.deepEqual(result.request.clientAddress, address);
      else assert.equal(result.request.clientAddress, undefined);
    }),
    { numRuns: 300 },
  );
});

test('a field announcing more than 256 bytes is refused by name, whatever follows', () => {
  fc.assert(
    fc.property(
      fourFields,
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: MAX_FIELD_BYTES + 1, max: 0xffff }),
      fc.uint8Array({ maxLength: 64 }),
      (fields, index, length, tail) => {
        const prefix = encodeRequest(fields.slice(0, index));
        const announce = Buffer.alloc(2);
        announce.writeUInt16BE(length);
        const [result] = decodeAll([Buffer.concat([prefix, announce, Buffer.from(tail)])]);
        assert.deepEqual(result, { kind: 'field-too-long', field: REQUEST_FIELDS[index], length });
      },
    ),
    { numRuns: 300 },
  );
});

test('arbitrary bytes never throw, and a verdict is final', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (chunks) => {
      const decoder = new RequestDecoder();
      let final = false;
      for (const chunk of chunks) {
        const result = decoder.push(Buffer.from(chunk));
        if (final) assert.equal(result.kind, 'incomplete', 'nothing after a verdict');
        if (result.kind !== 'incomplete') final = true;
      }
    }),
    { numRuns: 1000 },
  );
});

test('the decoder does not keep or alter the chunks it is given (the caller zeroes them)', () => {
  fc.assert(
    fc.property(fourFields, fc.array(fc.nat(), { maxLength: 6 }), (fields, cuts) => {
      const pieces = split(encodeRequest(fields), cuts).map((piece) => Buffer.from(piece));
      const copies = pieces.map((piece) => Buffer.from(piece));
      const decoder = new RequestDecoder();
      let request: Extract<DecodeResult, { kind: 'request' }>['request'] | undefined;
      pieces.forEach((piece, index) => {
        const result = decoder.push(piece);
        assert.deepEqual(piece, copies[index], 'chunk unchanged');
        piece.fill(0); // what the connection does
        if (result.kind === 'request') request = result.request;
      });
      assert.ok(request);
      assert.deepEqual([request.login, request.password, request.service, request.realm], fields);
    }),
    { numRuns: 300 },
  );
});
