/**
 * A reader process for test/shared-cache-hammer.test.ts: maps the shared region inherited
 * on fd 3, looks credentials up in the credential table for `durationMs` while the test's
 * writer rewrites it, and prints one JSON line of counts. It judges every answer against
 * what the writer may ever have stored (see hammerPassword):
 * - a `hit` for a password the writer never stores for that key is a wrong hit;
 * - a consistent slot copy whose MAC is not one the writer stored for that key is torn.
 * argv[2]: JSON { keyOffset, tableOffset, tableBytes, users, durationMs }.
 */
import { SharedRegion } from '../../src/native/shared-memory.js';
import { systemMonotonicMs } from '../../src/runtime/monotonic-clock.js';
import { CacheReader } from '../../src/server/cache-reader.js';
import { KeyedDigest } from '../../src/server/keyed-digest.js';
import { CredentialTableReader } from '../../src/shared/credential-table.js';
import { hammerKey, hammerPassword, type HammerLayout } from './shared-cache-hammer-plan.js';

const REGION_FD = 3;

const layout = JSON.parse(process.argv[2] ?? '{}') as HammerLayout;
const region = SharedRegion.map(REGION_FD);
const key = Buffer.from(new Uint8Array(region.buffer, layout.keyOffset, 32)); // a copy
const section = { buffer: region.buffer, offset: layout.tableOffset, bytes: layout.tableBytes };
const reader = new CacheReader(section, new KeyedDigest(key));
const raw = new CredentialTableReader(section);

const users = Array.from({ length: layout.users }, (_, user) => {
  const parts = hammerKey(user);
  return {
    parts,
    keyDigest: reader.keyDigestOf(parts)!,
    stored: [hammerPassword(user, 'a'), hammerPassword(user, 'b')],
    storedMacs: [reader.macOf(hammerPassword(user, 'a')), reader.macOf(hammerPassword(user, 'b'))],
    never: hammerPassword(user, 'never'),
  };
});

const counts = { lookups: 0, hits: 0, mismatches: 0, wrongHits: 0, slotCopies: 0, torn: 0, readsInDoubt: 0 };
const end = systemMonotonicMs() + layout.durationMs;
while (systemMonotonicMs() < end) {
  for (let round = 0; round < 100; round++) {
    const index = Math.floor(Math.random() * users.length);
    const user = users[index]!;
    const other = users[(index + 1 + Math.floor(Math.random() * (users.length - 1))) % users.length]!;
    const choice = Math.floor(Math.random() * 4);
    // 0, 1: a password the writer stores for this key; 2: one it never stores; 3: another key's
    const password = choice < 2 ? user.stored[choice]! : choice === 2 ? user.never : other.stored[round % 2]!;
    const answer = reader.lookup(user.parts, password);
    counts.lookups++;
    if (answer === 'hit') {
      counts.hits++;
      if (choice >= 2) counts.wrongHits++;
    } else if (answer === 'mismatch') {
      counts.mismatches++;
    }
    const copy = raw.find(user.keyDigest, systemMonotonicMs());
    if (copy) {
      counts.slotCopies++;
      if (!user.storedMacs.some((mac) => mac.equals(copy.mac))) counts.torn++;
    }
  }
}
counts.readsInDoubt = reader.readsInDoubt + raw.readsInDoubt;
process.stdout.write(`${JSON.stringify(counts)}\n`);
