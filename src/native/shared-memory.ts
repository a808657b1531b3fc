/**
 * Memory shared by every process of the daemon: one anonymous file (memfd_create) made by
 * the primary, sized once, mapped MAP_SHARED by the primary and by every worker (which
 * inherits the descriptor), and seen from JavaScript as an ArrayBuffer (koffi.view) — typed
 * arrays and Atomics work on it as on any buffer, and a store in one process is seen by the
 * others.
 *
 * The mapping lives as long as the process: it is never unmapped (the ArrayBuffer would
 * dangle). Nothing here is on disk; the file has no name in any directory and is gone when
 * the last process holding it exits.
 */
import koffi from 'koffi';
import { libcHandle } from './libc.js';

const MFD_CLOEXEC = 0x0001;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
/** Sections start on this boundary: Float64Array / BigInt64Array views need 8. */
export const SECTION_ALIGNMENT = 64;

type IntFn = (...args: unknown[]) => number;
interface Calls {
  memfdCreate: IntFn;
  ftruncate: IntFn;
  mmap: (...args: unknown[]) => unknown;
  lseek: IntFn;
  close: IntFn;
}
let calls: Calls | undefined;

function load(): Calls {
  if (calls) return calls;
  const lib = libcHandle();
  calls = {
    memfdCreate: lib.func('memfd_create', 'int', ['str', 'unsigned int']) as IntFn,
    ftruncate: lib.func('ftruncate', 'int', ['int', 'long']) as IntFn,
    mmap: lib.func('mmap', 'void *', ['void *', 'unsigned long', 'int', 'int', 'int', 'long']),
    lseek: lib.func('lseek', 'long', ['int', 'long', 'int']) as IntFn,
    close: lib.func('close', 'int', ['int']) as IntFn,
  };
  return calls;
}

const SEEK_END = 2;
/** mmap's MAP_FAILED, as koffi shows it. */
const MAP_FAILED = -1n;

export class SharedRegion {
  private constructor(
    /** The memfd: inherited by workers (close-on-exec is cleared for the one that gets it). */
    readonly fd: number,
    readonly buffer: ArrayBuffer,
  ) {}

  get bytes(): number {
    return this.buffer.byteLength;
  }

  /** A new zero-filled region of `bytes` (the primary, once at start). Throws on failure. */
  static create(name: string, bytes: number): SharedRegion {
    const c = load();
    const fd = c.memfdCreate(name, MFD_CLOEXEC);
    if (fd < 0) throw new Error(`memfd_create: errno ${koffi.errno()}`);
    if (c.ftruncate(fd, bytes) < 0) {
      const errno = koffi.errno();
      c.close(fd);
      throw new Error(`ftruncate of the shared region to ${bytes} bytes: errno ${errno}`);
    }
    return new SharedRegion(fd, mapWhole(fd, bytes));
  }

  /** Maps a region made by the primary, from a descriptor this process inherited. */
  static map(fd: number): SharedRegion {
    const bytes = load().lseek(fd, 0, SEEK_END);
    if (bytes <= 0) throw new Error(`shared region fd ${fd}: no size (errno ${koffi.errno()})`);
    return new SharedRegion(fd, mapWhole(fd, bytes));
  }
}

function mapWhole(fd: number, bytes: number): ArrayBuffer {
  const address = load().mmap(null, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address === null || koffi.address(address) === MAP_FAILED) throw new Error(`mmap of the shared region: errno ${koffi.errno()}`);
  return koffi.view(address, bytes);
}

/**
 * Carves a region into named sections, each starting on SECTION_ALIGNMENT. The primary and
 * every worker compute the same layout from the same sizes (passed in the worker settings).
 */
export class RegionLayout {
  private next = 0;
  private readonly sections = new Map<string, { offset: number; bytes: number }>();

  add(name: string, bytes: number): this {
    this.sections.set(name, { offset: this.next, bytes });
    this.next += Math.ceil(bytes / SECTION_ALIGNMENT) * SECTION_ALIGNMENT;
    return this;
  }

  get totalBytes(): number {
    return Math.max(this.next, SECTION_ALIGNMENT);
  }

  /** Where a section lives; throws for a name never added (a layout bug). */
  section(name: string): { offset: number; bytes: number } {
    const found = this.sections.get(name);
    if (!found) throw new Error(`no section ${name} in the shared region layout`);
    return found;
  }
}
