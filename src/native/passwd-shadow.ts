/**
 * This machine's account databases through the C library (so NSS applies: files, and
 * whatever else nsswitch.conf names): getpwnam_r and getspnam_r, shared by the shadow and
 * getpwent mechanisms.
 *
 * The C library writes the entry's strings into a buffer we own; the stored hash is handed
 * to the caller as a view of that buffer (never a JS string, never copied), and the buffer
 * is wiped when the caller's function returns.
 */
import { constants } from 'node:os';
import { cStringView, loadLibC, nulTerminated, type LibC, type PasswdRecord, type ShadowRecord } from './libc.js';

/** First buffer size: glibc's own hint (_SC_GETPW_R_SIZE_MAX) is 1024; entries are short. */
const FIRST_BUFFER_BYTES = 16 * 1024;
/** ERANGE doubles the buffer up to this: no sane passwd or shadow line is larger. */
const MAX_BUFFER_BYTES = 1024 * 1024;
const { ERANGE } = constants.errno;

/** What a lookup found: a record, or no such account, or the C library's error text (strerror). */
export type Lookup<T> = { readonly found: true; readonly entry: T } | { readonly found: false; readonly error?: string };

export interface PasswdEntry {
  /** pw_passwd: the hash, `x` when shadowed. A view of the lookup buffer: valid only inside the callback. */
  readonly passwd: Buffer;
}

export interface ShadowEntry {
  /** sp_pwdp: the hash. A view of the lookup buffer: valid only inside the callback. */
  readonly hash: Buffer;
  /** Days since the epoch of the last change; -1 unset. */
  readonly lastChange: number;
  /** Days the password stays valid after a change; -1 unset. */
  readonly maxDays: number;
  /** Day (since the epoch) the account expires; -1 never. */
  readonly expire: number;
}

type Getter<R> = (libc: LibC, name: Buffer, buffer: Buffer, out: [R | null]) => number;

/**
 * Runs a get*nam_r with a growing buffer and passes the result to `use`; the buffer
 * (which holds the hash) is wiped before returning.
 */
function withLookup<R, E, T>(login: Buffer, get: Getter<R>, toEntry: (libc: LibC, record: R) => E, use: (result: Lookup<E>) => T): T {
  const libc = loadLibC();
  const name = nulTerminated(login);
  for (let size = FIRST_BUFFER_BYTES; ; size *= 2) {
    const buffer = Buffer.alloc(size);
    try {
      const out: [R | null] = [null];
      const rc = get(libc, name, buffer, out);
      if (rc === ERANGE && size < MAX_BUFFER_BYTES) continue;
      if (rc !== 0) return use({ found: false, error: libc.strerror(rc) });
      if (out[0] === null) return use({ found: false });
      return use({ found: true, entry: toEntry(libc, out[0]) });
    } finally {
      buffer.fill(0);
    }
  }
}

/** getpwnam_r(login); `use` sees the entry only while its buffer is alive. */
export function withPasswdEntry<T>(login: Buffer, use: (result: Lookup<PasswdEntry>) => T): T {
  return withLookup<PasswdRecord, PasswdEntry, T>(
    login,
    (libc, name, buffer, out) => libc.getpwnamR(name, buffer, out),
    (libc, record) => ({ passwd: record.pw_passwd === null ? Buffer.alloc(0) : cStringView(libc, record.pw_passwd) }),
    use,
  );
}

/** getspnam_r(login); same contract as withPasswdEntry. Reading /etc/shadow needs root. */
export function withShadowEntry<T>(login: Buffer, use: (result: Lookup<ShadowEntry>) => T): T {
  return withLookup<ShadowRecord, ShadowEntry, T>(
    login,
    (libc, name, buffer, out) => libc.getspnamR(name, buffer, out),
    (libc, record) => ({
      hash: record.sp_pwdp === null ? Buffer.alloc(0) : cStringView(libc, record.sp_pwdp),
      lastChange: Number(record.sp_lstchg),
      maxDays: Number(record.sp_max),
      expire: Number(record.sp_expire),
    }),
    use,
  );
}
