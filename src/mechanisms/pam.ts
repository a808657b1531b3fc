/**
 * The `pam` mechanism (saslauthd's auth_pam): pam_start(service, login) →
 * pam_authenticate(PAM_SILENT) → pam_acct_mgmt(PAM_SILENT) → pam_end, with the
 * original's replies and debug lines. Improvements over the C original:
 *  - PROMPT_ECHO_ON is answered with the login (the original could crash on it);
 *  - PAM_RHOST is set when the client sent a host;
 *  - a PAM_FAIL_DELAY callback records the delay instead of letting PAM sleep in the
 *    worker; the primary applies it (AuthResult.failDelayMs);
 *  - login, service and password reach PAM byte-exact (no JS string round trip) and the
 *    password is never copied into JS memory, only into malloc'd memory that PAM frees
 *    (or that we wipe and free ourselves on error).
 *
 * Library selection (SASLAUTHD_PAM_LIBRARY) is documented in ../native/libpam.ts.
 */
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismLog, MechanismOptions } from './types.js';
import {
  PAM_BUF_ERR,
  PAM_CONV_ERR,
  PAM_ERROR_MSG,
  PAM_MAX_NUM_MSG,
  PAM_PROMPT_ECHO_OFF,
  PAM_PROMPT_ECHO_ON,
  PAM_RESPONSE_RESP_OFFSET,
  PAM_RESPONSE_SIZE,
  PAM_RHOST,
  PAM_SILENT,
  PAM_SUCCESS,
  PAM_TEXT_INFO,
  POINTER_SIZE,
  loadLibC,
  loadLibPam,
  readMessage,
  readPointer,
  writeByte,
  writePointer,
  type LibC,
  type LibPam,
  type NativeCallback,
  type PamHandle,
  type Pointer,
} from '../native/libpam.js';
import { pinLoadedObjects } from '../native/module-pinning.js';

/** What the conversation and fail-delay callbacks may see of the request in progress. */
export interface PamTransaction {
  /** Travels as appdata_ptr; callbacks carrying another value are refused. */
  readonly id: number;
  readonly login: Buffer;
  readonly password: Buffer;
  readonly log: MechanismLog;
  /** Largest delay PAM asked for on a failure, in microseconds. */
  failDelayUsec: number;
}

// One PAM transaction at a time per process: the registered callbacks look here.
let active: PamTransaction | null = null;
let lastId = 0;
let callbacks: { readonly conv: NativeCallback; readonly delay: NativeCallback } | null = null;

function matches(appdata: number | bigint): PamTransaction | null {
  return active !== null && BigInt(appdata) === BigInt(active.id) ? active : null;
}

/** Copies `bytes` into a fresh NUL-terminated malloc'd string. */
function mallocCopy(libc: LibC, bytes: Buffer): Pointer | null {
  const ptr = libc.malloc(bytes.length + 1);
  if (ptr === null) return null;
  libc.memcpy(ptr, bytes, bytes.length);
  writeByte(ptr, bytes.length, 0);
  return ptr;
}

/**
 * The conversation: answers every message of one call, or none. Exported for tests;
 * `msg` is Linux-PAM's layout, an array of `num_msg` pointers to `struct pam_message`.
 */
export function converse(tx: PamTransaction, numMsg: number, msg: Pointer | null, resp: Pointer | null): number {
  if (numMsg <= 0 || numMsg > PAM_MAX_NUM_MSG || msg === null) return PAM_CONV_ERR;
  const libc = loadLibC();
  const answers: Array<{ ptr: Pointer; length: number }> = [];
  let array: Pointer | null = null;
  const fail = (status: number): number => {
    // Wipe before free: the copies may hold the password.
    for (const { ptr, length } of answers) {
      libc.memset(ptr, 0, length);
      libc.free(ptr);
    }
    libc.free(array);
    return status;
  };
  try {
    for (let i = 0; i < numMsg; i++) {
      const msgPtr = readPointer(msg, i * POINTER_SIZE);
      if (msgPtr === null) return fail(PAM_CONV_ERR);
      const { style, text } = readMessage(msgPtr);
      let answer: Buffer;
      if (style === PAM_PROMPT_ECHO_OFF) {
        answer = tx.password;
      } else if (style === PAM_PROMPT_ECHO_ON) {
        answer = tx.login;
      } else if (style === PAM_ERROR_MSG || style === PAM_TEXT_INFO) {
        tx.log.debug(`PAM message: ${text ?? ''}`);
        continue;
      } else {
        tx.log.debug(`auth_pam: unsupported PAM message style ${style}`);
        return fail(PAM_CONV_ERR);
      }
      // A NUL would silently shorten what PAM sees; refuse instead of truncating.
      if (answer.includes(0) || resp === null) return fail(PAM_CONV_ERR);
      if (array === null) {
        array = libc.calloc(numMsg, PAM_RESPONSE_SIZE);
        if (array === null) return fail(PAM_BUF_ERR);
      }
      const copy = mallocCopy(libc, answer);
      if (copy === null) return fail(PAM_BUF_ERR);
      answers.push({ ptr: copy, length: answer.length });
      writePointer(array, i * PAM_RESPONSE_SIZE + PAM_RESPONSE_RESP_OFFSET, copy);
    }
    if (resp !== null) {
      // Even when nothing needed an answer, PAM expects an array (of NULL responses).
      if (array === null) {
        array = libc.calloc(numMsg, PAM_RESPONSE_SIZE);
        if (array === null) return fail(PAM_BUF_ERR);
      }
      writePointer(resp, 0, array);
    }
    return PAM_SUCCESS;
  } catch (err) {
    // Never let an exception escape into C: koffi would hand PAM 0, i.e. PAM_SUCCESS.
    tx.log.error(`auth_pam: conversation failed: ${err instanceof Error ? err.message : String(err)}`);
    return fail(PAM_CONV_ERR);
  }
}

function onConversation(numMsg: number, msg: Pointer | null, resp: Pointer | null, appdata: number | bigint): number {
  const tx = matches(appdata);
  return tx === null ? PAM_CONV_ERR : converse(tx, numMsg, msg, resp);
}

function onFailDelay(retval: number, usecDelay: number, appdata: number | bigint): void {
  const tx = matches(appdata);
  // Linux-PAM calls this after every pam_authenticate; only failures are delayed.
  if (tx !== null && retval !== PAM_SUCCESS) tx.failDelayUsec = Math.max(tx.failDelayUsec, usecDelay);
}

function ensureCallbacks(pam: LibPam): { readonly conv: NativeCallback; readonly delay: NativeCallback } {
  callbacks ??= { conv: pam.registerConversation(onConversation), delay: pam.registerFailDelay(onFailDelay) };
  return callbacks;
}

function releaseCallbacks(): void {
  if (callbacks === null || active !== null) return;
  const pam = loadLibPam();
  pam.unregister(callbacks.conv);
  pam.unregister(callbacks.delay);
  callbacks = null;
}

/** A NUL-terminated copy of the bytes, for a C `const char *` (codec.ts's cString cuts at a NUL instead). */
function nulTerminated(bytes: Buffer): Buffer {
  const out = Buffer.alloc(bytes.length + 1);
  bytes.copy(out);
  return out;
}

function failure(reply: string, tx: PamTransaction): AuthResult {
  return tx.failDelayUsec > 0 ? { reply, failDelayMs: Math.ceil(tx.failDelayUsec / 1000) } : { reply };
}

function authenticate(pam: LibPam, request: AuthRequest, log: MechanismLog): AuthResult {
  if (active !== null) throw new Error('auth_pam: a PAM transaction is already running in this process');
  loadLibC();
  const cbs = ensureCallbacks(pam);
  if (request.login.includes(0) || request.service.includes(0)) {
    log.debug('DEBUG: auth_pam: pam_start failed: NUL byte in login or service');
    return { reply: 'NO PAM start error' };
  }
  lastId = lastId >= 0x7fffffff ? 1 : lastId + 1;
  const tx: PamTransaction = { id: lastId, login: request.login, password: request.password, log, failDelayUsec: 0 };
  active = tx;
  try {
    const handleOut: [PamHandle | null] = [null];
    const started = pam.start(nulTerminated(request.service), nulTerminated(request.login), cbs.conv, tx.id, handleOut);
    const handle = handleOut[0];
    if (started !== PAM_SUCCESS || handle === null) {
      log.debugAlways(`DEBUG: auth_pam: pam_start failed: ${pam.strerror(handle, started)}`);
      return { reply: 'NO PAM start error' };
    }
    pinLoadedObjects(request.service.toString('latin1'));
    let status = PAM_SUCCESS;
    try {
      if (request.remoteHost !== undefined && request.remoteHost !== '') {
        const host = request.remoteHost.split('\0', 1)[0] ?? '';
        const rc = pam.setStringItem(handle, PAM_RHOST, nulTerminated(Buffer.from(host, 'latin1')) /* the bytes the client sent */);
        if (rc !== PAM_SUCCESS) log.debug(`auth_pam: pam_set_item(PAM_RHOST) failed: ${pam.strerror(handle, rc)}`);
      }
      const rc = pam.setFailDelay(handle, cbs.delay);
      if (rc !== PAM_SUCCESS) log.debug(`auth_pam: pam_set_item(PAM_FAIL_DELAY) failed: ${pam.strerror(handle, rc)}`);

      status = pam.authenticate(handle, PAM_SILENT);
      if (status !== PAM_SUCCESS) {
        log.debugAlways(`DEBUG: auth_pam: pam_authenticate failed: ${pam.strerror(handle, status)}`);
        return failure('NO PAM auth error', tx);
      }
      status = pam.acctMgmt(handle, PAM_SILENT);
      if (status !== PAM_SUCCESS) {
        log.debugAlways(`DEBUG: auth_pam: pam_acct_mgmt failed: ${pam.strerror(handle, status)}`);
        return failure('NO PAM acct error', tx);
      }
      return { reply: 'OK' };
    } finally {
      pam.end(handle, status);
    }
  } finally {
    active = null;
  }
}

export const pamMechanism: MechanismFactory = {
  name: 'pam',
  check(_options: MechanismOptions): void {
    loadLibPam();
    loadLibC();
  },
  create(options: MechanismOptions): Mechanism {
    return {
      blocking: true, // PAM calls are synchronous: the worker needs no event loop
      authenticate(request: AuthRequest): AuthResult {
        let pam: LibPam;
        try {
          pam = loadLibPam();
        } catch (err) {
          options.log.error(`auth_pam: ${err instanceof Error ? err.message : String(err)}`);
          return { reply: 'NO PAM start error' };
        }
        return authenticate(pam, request, options.log);
      },
      close(): void {
        releaseCallbacks();
      },
    };
  },
};
