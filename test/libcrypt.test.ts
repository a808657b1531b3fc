/** passwordMatchesHash against hashes made by the system's own tools (openssl passwd / mkpasswd-like setups). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { passwordMatchesHash } from '../src/native/libcrypt.js';

const opensslHash = (scheme: string, password: string): Buffer =>
  Buffer.from(execFileSync('openssl', ['passwd', `-${scheme}`, '-stdin'], { input: password }).toString().trim());

for (const scheme of ['6', '5', '1']) {
  test(`crypt scheme $${scheme}$: right password matches, a changed last byte does not`, () => {
    const hash = opensslHash(scheme, 'pä ss"\\word');
    assert.equal(passwordMatchesHash(Buffer.from('pä ss"\\word'), hash), true);
    assert.equal(passwordMatchesHash(Buffer.from('pä ss"\\worD'), hash), false);
  });
}

test('locked, disabled, empty and malformed hashes never match', () => {
  const hash = opensslHash('6', 'secret');
  assert.equal(passwordMatchesHash(Buffer.from('secret'), Buffer.concat([Buffer.from('!'), hash])), false);
  assert.equal(passwordMatchesHash(Buffer.from('secret'), Buffer.from('*')), false);
  assert.equal(passwordMatchesHash(Buffer.from('secret'), Buffer.from('*NP*')), false);
  assert.equal(passwordMatchesHash(Buffer.from(''), Buffer.from('')), false);
  assert.equal(passwordMatchesHash(Buffer.from('secret'), Buffer.from('$6$')), false);
  assert.equal(passwordMatchesHash(Buffer.from('secret'), Buffer.from('x')), false);
});
