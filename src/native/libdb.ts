/**
 * Read-only lookups in a Berkeley DB 5.3 hash database (the format of Debian's sasldb,
 * /etc/sasldb2) through libdb-5.3 and koffi.
 *
 * Berkeley DB's native handle (`DB *`) is a large struct of data fields and method pointers
 * whose layout depends on the build; binding it by hand would mean hard-coding offsets. The
 * library also ships the small, fixed "DB 1.85 compatibility" interface (db_185.h: `dbopen`,
 * exported as `__db185_open`), whose handle is seven words: type, close, del, get, put, seq,
 * sync. It opens the file with the same DB->open call and the same access method (DB_HASH,
 * read-only, no environment, no locking) as the sasldb plugin does, so it reads exactly what
 * saslpasswd2 wrote, and only its two method pointers are ours to call.
 *
 * A value is looked at in place (a view of the library's memory, valid until the next call
 * on the handle), and `lookup` wipes that memory before it returns: a password read from the
 * database lives no longer than the request.
 */
import { constants } from 'node:fs';
import koffi from 'koffi';
import { bind, loadLibC, loadLibrary, nulTerminated, type Pointer } from './libc.js';

const LIBDB = 'libdb-5.3.so';
/** DBTYPE of db_185.h: DB_BTREE 0, DB_HASH 1, DB_RECNO 2. sasldb is a hash database. */
const DB185_HASH = 1;
/** db185 get(): 0 found, 1 not found, -1 error (errno set). */
const DB185_FOUND = 0;
const DB185_NOT_FOUND = 1;

const Dbt185 = koffi.struct({ data: 'void *', size: 'size_t' });
const CloseProto = koffi.proto('int', ['void *']);
const GetProto = koffi.proto('int', ['void *', koffi.pointer(Dbt185), koffi.out(koffi.pointer(Dbt185)), 'uint']);
const Db185 = koffi.struct({
  type: 'int',
  close: 'void *',
  del: 'void *',
  get: 'void *',
  put: 'void *',
  seq: 'void *',
  sync: 'void *',
});

type DbOpen = (file: Buffer, flags: number, mode: number, type: number, openinfo: null) => Pointer | null;
let dbOpen: DbOpen | undefined;

/** Loads libdb-5.3 and resolves its dbopen; throws an Error saying why not. */
export function loadLibDb(): void {
  if (dbOpen !== undefined) return;
  const lib = loadLibrary(LIBDB, 'Berkeley DB library');
  const open = bind(lib, LIBDB, '__db185_open', 'void *', [koffi.pointer('uint8_t'), 'int', 'int', 'int', 'void *']);
  loadLibC();
  dbOpen = (file, flags, mode, type, openinfo) => open(file, flags, mode, type, openinfo) as Pointer | null;
}

/** What one lookup gave; `value` is only valid inside the callback. */
export type DbLookup = { readonly kind: 'found'; readonly value: Buffer } | { readonly kind: 'absent' } | { readonly kind: 'error'; readonly message: string };

function errnoText(): string {
  return loadLibC().strerror(koffi.errno());
}

interface OpenDatabase {
  readonly handle: Pointer;
  readonly methods: { readonly close: Pointer; readonly get: Pointer };
}

/** dbopen(path, O_RDONLY, DB_HASH): the handle, or why not. */
function openReadOnly(path: string): OpenDatabase | string {
  loadLibDb();
  const handle = dbOpen!(nulTerminated(Buffer.from(path)), constants.O_RDONLY, 0, DB185_HASH, null);
  if (handle === null) return `cannot open ${path} as a Berkeley DB hash database: ${errnoText()}`;
  return { handle, methods: koffi.decode(handle, Db185) as OpenDatabase['methods'] };
}

/**
 * Opens the hash database at `path` read-only, looks `key` up, passes the result to `use`,
 * wipes the value and closes the database.
 */
export function lookup<T>(path: string, key: Buffer, use: (result: DbLookup) => T): T {
  const opened = openReadOnly(path);
  if (typeof opened === 'string') return use({ kind: 'error', message: opened });
  const { handle, methods } = opened;
  const out: Record<string, unknown> = {};
  let value: Buffer | undefined;
  try {
    const rc = koffi.call(methods.get, GetProto, handle, { data: key, size: key.length }, out, 0) as number;
    if (rc === DB185_NOT_FOUND) return use({ kind: 'absent' });
    if (rc !== DB185_FOUND) return use({ kind: 'error', message: `cannot read ${path}: ${errnoText()}` });
    const size = Number(out.size);
    value = size === 0 || out.data === null ? Buffer.alloc(0) : Buffer.from(koffi.view(out.data as Pointer, size));
    return use({ kind: 'found', value });
  } finally {
    value?.fill(0);
    koffi.call(methods.close, CloseProto, handle);
  }
}

/** Opens and closes the database, for a start-up check; throws with the reason. */
export function assertReadable(path: string): void {
  const opened = openReadOnly(path);
  if (typeof opened === 'string') throw new Error(opened);
  koffi.call(opened.methods.close, CloseProto, opened.handle);
}
