/**
 * koffi bindings for the parts of MIT Kerberos' libkrb5 (libkrb5.so.3) that the kerberos5
 * mechanism needs: a context, principals, initial credentials from a password, and their
 * verification against a keytab.
 *
 * The three calls that may wait on the network or on DNS (krb5_get_init_creds_password,
 * krb5_sname_to_principal, krb5_verify_init_creds) are bound with koffi's `.async` too: they
 * then run on a thread of libuv's pool while the worker's event loop keeps its own deadline
 * (see mechanisms/kerberos5/verification.ts). Every other call is local and quick.
 *
 * Types are anonymous (koffi.opaque) so that other koffi users in the same process cannot
 * clash with our type names. Strings go in as NUL-terminated Buffers, never as JS strings,
 * so a password is never copied into a JS string.
 */
import koffi from 'koffi';
import type { IKoffiLib, TypeSpec } from 'koffi';

export const LIBKRB5 = 'libkrb5.so.3';

/** krb5.h: a service principal whose instance is a host name. */
export const KRB5_NT_SRV_HST = 3;

declare const contextBrand: unique symbol;
/** A krb5_context. Never used by two threads at once: one per request. */
export type Krb5Context = { readonly [contextBrand]: 'krb5_context' };
declare const principalBrand: unique symbol;
export type Krb5Principal = { readonly [principalBrand]: 'krb5_principal' };
declare const keytabBrand: unique symbol;
export type Krb5Keytab = { readonly [keytabBrand]: 'krb5_keytab' };
declare const gicOptBrand: unique symbol;
export type Krb5InitCredsOpt = { readonly [gicOptBrand]: 'krb5_get_init_creds_opt' };
declare const messageBrand: unique symbol;
type ErrorMessagePtr = { readonly [messageBrand]: 'const char *' };

/** Node-style completion of a koffi `.async` call. */
type Done = (error: unknown, code: number) => void;

export interface LibKrb5 {
  initContext(out: [Krb5Context | null]): number;
  freeContext(context: Krb5Context): void;
  /** `name` NUL-terminated. */
  parseName(context: Krb5Context, name: Buffer, out: [Krb5Principal | null]): number;
  freePrincipal(context: Krb5Context, principal: Krb5Principal): void;
  initCredsOptAlloc(context: Krb5Context, out: [Krb5InitCredsOpt | null]): number;
  initCredsOptFree(context: Krb5Context, opt: Krb5InitCredsOpt): void;
  /** On a pool thread. `creds` is a zeroed krb5_creds (CREDS_SIZE bytes); `password` NUL-terminated. */
  getInitCredsPasswordAsync(
    context: Krb5Context,
    creds: Buffer,
    client: Krb5Principal,
    password: Buffer,
    opt: Krb5InitCredsOpt,
    done: Done,
  ): void;
  /** Frees what krb5_get_init_creds_password put in `creds` (not the buffer itself). */
  freeCredContents(context: Krb5Context, creds: Buffer): void;
  /** `name` NUL-terminated. */
  keytabResolve(context: Krb5Context, name: Buffer, out: [Krb5Keytab | null]): number;
  keytabClose(context: Krb5Context, keytab: Krb5Keytab): void;
  /** On a pool thread (it may look the host name up). `hostname` null = this host. */
  snameToPrincipalAsync(
    context: Krb5Context,
    hostname: Buffer | null,
    serviceName: Buffer,
    out: [Krb5Principal | null],
    done: Done,
  ): void;
  /** Fills a VERIFY_OPT_SIZE buffer: defaults, then ap_req_nofail set. */
  initVerifyOptNoFail(opt: Buffer): void;
  /** On a pool thread. `keytab` null = the default keytab. */
  verifyInitCredsAsync(
    context: Krb5Context,
    creds: Buffer,
    server: Krb5Principal,
    keytab: Krb5Keytab | null,
    opt: Buffer,
    done: Done,
  ): void;
  /** libkrb5's text for an error code (the context keeps the details of its last error). */
  errorMessage(context: Krb5Context | null, code: number): string;
}

// Anonymous types, created once.
const ContextPtr = koffi.pointer(koffi.opaque());
const PrincipalPtr = koffi.pointer(koffi.opaque());
const KeytabPtr = koffi.pointer(koffi.opaque());
const GicOptPtr = koffi.pointer(koffi.opaque());
const Data = koffi.struct({ magic: 'int32_t', length: 'uint32_t', data: 'void *' });
/** krb5.h `krb5_creds`: declared only to get its size right; its fields are libkrb5's. */
const Creds = koffi.struct({
  magic: 'int32_t',
  client: 'void *',
  server: 'void *',
  keyblock: koffi.struct({ magic: 'int32_t', enctype: 'int32_t', length: 'uint32_t', contents: 'void *' }),
  times: koffi.struct({ authtime: 'int32_t', starttime: 'int32_t', endtime: 'int32_t', renew_till: 'int32_t' }),
  is_skey: 'uint32_t',
  ticket_flags: 'int32_t',
  addresses: 'void *',
  ticket: Data,
  second_ticket: Data,
  authdata: 'void *',
});
/** krb5.h `krb5_verify_init_creds_opt` (flags, ap_req_nofail), filled by libkrb5's own setters. */
const VerifyOpt = koffi.struct({ flags: 'int32_t', ap_req_nofail: 'int32_t' });

export const CREDS_SIZE = koffi.sizeof(Creds);
export const VERIFY_OPT_SIZE = koffi.sizeof(VerifyOpt);

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function bind(lib: IKoffiLib, name: string, result: TypeSpec, args: TypeSpec[]) {
  try {
    return lib.func(name, result, args);
  } catch (error) {
    throw new Error(`cannot resolve ${name} in "${LIBKRB5}": ${describe(error)}`);
  }
}

let libKrb5: LibKrb5 | undefined;

/** Loads libkrb5 and resolves every symbol we use; throws an Error saying why not (for `check()`). */
export function loadLibKrb5(): LibKrb5 {
  if (libKrb5 !== undefined) return libKrb5;
  let lib: IKoffiLib;
  try {
    lib = koffi.load(LIBKRB5);
  } catch (error) {
    throw new Error(`cannot load "${LIBKRB5}" (Debian package libkrb5-3): ${describe(error)}`);
  }
  const u8ptr = koffi.pointer('uint8_t');
  const initContext = bind(lib, 'krb5_init_context', 'int32_t', [koffi.out(koffi.pointer(ContextPtr))]);
  const freeContext = bind(lib, 'krb5_free_context', 'void', [ContextPtr]);
  const parseName = bind(lib, 'krb5_parse_name', 'int32_t', [ContextPtr, u8ptr, koffi.out(koffi.pointer(PrincipalPtr))]);
  const freePrincipal = bind(lib, 'krb5_free_principal', 'void', [ContextPtr, PrincipalPtr]);
  const optAlloc = bind(lib, 'krb5_get_init_creds_opt_alloc', 'int32_t', [ContextPtr, koffi.out(koffi.pointer(GicOptPtr))]);
  const optFree = bind(lib, 'krb5_get_init_creds_opt_free', 'void', [ContextPtr, GicOptPtr]);
  // (context, creds, client, password, prompter, prompter data, start time, in_tkt_service, options)
  const getInitCredsPassword = bind(lib, 'krb5_get_init_creds_password', 'int32_t', [
    ContextPtr,
    u8ptr,
    PrincipalPtr,
    u8ptr,
    'void *',
    'void *',
    'int32_t',
    'void *',
    GicOptPtr,
  ]);
  const freeCredContents = bind(lib, 'krb5_free_cred_contents', 'void', [ContextPtr, u8ptr]);
  const ktResolve = bind(lib, 'krb5_kt_resolve', 'int32_t', [ContextPtr, u8ptr, koffi.out(koffi.pointer(KeytabPtr))]);
  const ktClose = bind(lib, 'krb5_kt_close', 'int32_t', [ContextPtr, KeytabPtr]);
  const snameToPrincipal = bind(lib, 'krb5_sname_to_principal', 'int32_t', [
    ContextPtr,
    u8ptr,
    u8ptr,
    'int32_t',
    koffi.out(koffi.pointer(PrincipalPtr)),
  ]);
  const verifyOptInit = bind(lib, 'krb5_verify_init_creds_opt_init', 'void', [u8ptr]);
  const verifyOptNoFail = bind(lib, 'krb5_verify_init_creds_opt_set_ap_req_nofail', 'void', [u8ptr, 'int']);
  // (context, creds, server, keytab, ccache out, options)
  const verifyInitCreds = bind(lib, 'krb5_verify_init_creds', 'int32_t', [ContextPtr, u8ptr, PrincipalPtr, KeytabPtr, 'void *', u8ptr]);
  // Returned as a pointer, not a JS string: it must go back to krb5_free_error_message.
  const getErrorMessage = bind(lib, 'krb5_get_error_message', 'void *', [ContextPtr, 'int32_t']);
  const freeErrorMessage = bind(lib, 'krb5_free_error_message', 'void', [ContextPtr, 'void *']);

  libKrb5 = {
    initContext: (out) => initContext(out) as number,
    freeContext: (context) => void freeContext(context),
    parseName: (context, name, out) => parseName(context, name, out) as number,
    freePrincipal: (context, principal) => void freePrincipal(context, principal),
    initCredsOptAlloc: (context, out) => optAlloc(context, out) as number,
    initCredsOptFree: (context, opt) => void optFree(context, opt),
    getInitCredsPasswordAsync: (context, creds, client, password, opt, done) =>
      void getInitCredsPassword.async(context, creds, client, password, null, null, 0, null, opt, done),
    freeCredContents: (context, creds) => void freeCredContents(context, creds),
    keytabResolve: (context, name, out) => ktResolve(context, name, out) as number,
    keytabClose: (context, keytab) => void ktClose(context, keytab),
    snameToPrincipalAsync: (context, hostname, serviceName, out, done) =>
      void snameToPrincipal.async(context, hostname, serviceName, KRB5_NT_SRV_HST, out, done),
    initVerifyOptNoFail: (opt) => {
      verifyOptInit(opt);
      verifyOptNoFail(opt, 1);
    },
    verifyInitCredsAsync: (context, creds, server, keytab, opt, done) =>
      void verifyInitCreds.async(context, creds, server, keytab, null, opt, done),
    errorMessage: (context, code) => {
      const message = getErrorMessage(context, code) as ErrorMessagePtr | null;
      if (message === null) return `Kerberos error ${code}`;
      try {
        return koffi.decode(message, 'char', -1) as string;
      } finally {
        freeErrorMessage(context, message);
      }
    },
  };
  return libKrb5;
}
