/**
 * Keeps the shared objects that a PAM transaction loaded (its modules and their libraries)
 * loaded for the life of the worker process.
 *
 * Linux-PAM dlopen()s every module of a service in pam_start and dlclose()s it in pam_end.
 * In a process the size of Node, that load and relocation costs more than the rest of the
 * transaction (pam_matrix through pam_wrapper, measured here: ~107 µs per transaction
 * unpinned, ~50 µs pinned). Once pinned, libpam's dlopen/dlclose only move a reference
 * count. Objects are pinned after the first pam_start of each service name. A new worker
 * loads everything afresh, so a module upgrade or a new module in the PAM configuration takes
 * effect when workers are recycled (SIGHUP, --max-jobs-per-worker) or the daemon restarts.
 */
import { readFileSync } from 'node:fs';
import koffi from 'koffi';

/** Services whose objects get pinned; random service names from clients must not make a worker rescan forever. */
const MAX_PINNED_SERVICES = 64;

const servicesSeen = new Set<string>();
const pinned = new Set<string>();

/** After a successful pam_start for `service`: pin what is loaded now (once per service). */
export function pinLoadedObjects(service: string): void {
  if (servicesSeen.has(service) || servicesSeen.size >= MAX_PINNED_SERVICES) return;
  servicesSeen.add(service);
  for (const path of mappedSharedObjects()) {
    if (pinned.has(path)) continue;
    pinned.add(path);
    try {
      koffi.load(path); // a dlopen handle never closed: the object stays
    } catch {
      // not loadable on its own (e.g. the vDSO or a replaced file): nothing to pin
    }
  }
}

/** Paths of the shared objects mapped into this process. */
function mappedSharedObjects(): Set<string> {
  const paths = new Set<string>();
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'latin1');
  } catch {
    return paths; // no /proc: no pinning, only slower
  }
  for (const line of maps.split('\n')) {
    // address perms offset dev inode path — the path may contain spaces
    const path = /^\S+ \S+ \S+ \S+ \d+\s+(\/.*)$/.exec(line)?.[1];
    if (path && /\.so(\.|$)/.test(path) && !path.endsWith(' (deleted)')) paths.add(path);
  }
  return paths;
}
