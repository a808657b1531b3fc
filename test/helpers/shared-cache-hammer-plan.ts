/** What the credential-cache hammer test's writer stores and its reader processes check (shared by both). */

export interface HammerLayout {
  readonly keyOffset: number;
  readonly tableOffset: number;
  readonly tableBytes: number;
  readonly users: number;
  readonly durationMs: number;
}

export function hammerKey(user: number): { user: Buffer; realm: Buffer; service: Buffer } {
  return { user: Buffer.from(`hammer${user}`), realm: Buffer.from('example.org'), service: Buffer.from('imap') };
}

/** The writer stores variants 'a' and 'b' only; 'never' is never stored for any key. */
export function hammerPassword(user: number, variant: 'a' | 'b' | 'never'): Buffer {
  return Buffer.from(`Hammer-${user}-${variant}-pass`);
}
