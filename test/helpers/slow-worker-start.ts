/**
 * A preloaded library that holds a new worker process for a while before Node even starts
 * in it (a constructor that sleeps when the process's command line names worker-main and
 * STS_SLOW_WORKER_START_MS is set): the primary then sits in its start-up window, waiting
 * for its first worker, which is what the start-up signal tests need. Built with the
 * system's C compiler (build-essential, installed by .ci/run) once per test process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SOURCE = `
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void slow_worker_start(void) {
  const char *ms = getenv("STS_SLOW_WORKER_START_MS");
  if (ms == NULL) return;
  char cmdline[4096] = {0};
  int fd = open("/proc/self/cmdline", O_RDONLY);
  if (fd < 0) return;
  ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
  close(fd);
  for (ssize_t i = 0; i < n; i++) if (cmdline[i] == 0) cmdline[i] = ' ';
  if (strstr(cmdline, "worker-main") != NULL) usleep((useconds_t)atoi(ms) * 1000);
}
`;

let built: string | undefined;

/** Path of the preload library (built on first use). */
export function slowWorkerStartLibrary(): string {
  if (built) return built;
  const directory = mkdtempSync(join(tmpdir(), 'sts-slowstart-'));
  const source = join(directory, 'slow.c');
  writeFileSync(source, SOURCE);
  const library = join(directory, 'slow.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O1', '-o', library, source]);
  built = library;
  return library;
}
