/** Asserts that no secret used by a test file reached any daemon log line. */
import assert from 'node:assert/strict';
import { allDaemonLogs } from './daemon.js';

export function assertNoSecretsLogged(secrets: readonly (string | Buffer)[]): void {
  const logs = Buffer.from(allDaemonLogs.join(''), 'latin1');
  assert.ok(logs.length > 0, 'no daemon output was collected');
  for (const secret of secrets) {
    const bytes = Buffer.from(secret);
    // The check only means something for secrets that cannot appear by chance.
    assert.ok(bytes.length >= 6, `secret too short to check: ${bytes.length} bytes`);
    assert.equal(logs.indexOf(bytes), -1, `a password appears in the daemon logs: ${bytes.toString('hex')}`);
  }
}

/** Asserts that no log line carries something shaped like a digest or key (hex ≥ 32, base64 ≥ 40). */
export function assertNoDigestsLogged(): void {
  const logs = allDaemonLogs.join('');
  assert.doesNotMatch(logs, /[0-9a-fA-F]{32,}/, 'a hex digest-like string in the logs');
  assert.doesNotMatch(logs, /[A-Za-z0-9+/]{40,}={0,2}/, 'a base64 digest-like string in the logs');
}
