/**
 * The primary process: the front door. It owns the socket and every client connection,
 * the instance lock and pid file, the worker pool, signals and shutdown. Workers only run
 * the mechanism (see workers/). Startup order:
 *   run dir → mechanism check → instance lock + pid file → workers ready → socket listening
 * so the socket exists only once requests can be served, and a failure at any step leaves
 * nothing behind (the lock and pid file are released).
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';
import { chooseLogFormat, type Logger } from '../log/logger.js';
import { packageVersion } from '../version.js';
import { Operations } from '../control/operations.js';
import { listenForControl } from '../control/control-server.js';
import { controlSocketPath } from '../control/protocol.js';
import { formatAddress } from '../metrics/listen-address.js';
import type { MetricsListener } from '../metrics/metrics-http.js';
import { findMechanism } from '../mechanisms/registry.js';
import { notifySystemd } from '../native/systemd.js';
import { POOL_REPLY, WorkerPool } from '../workers/pool.js';
import { FastPathHub } from '../workers/fast-path-hub.js';
import type { WorkerSettings } from '../workers/worker-settings.js';
import { createSharedState, type SharedStateSizes } from '../shared/shared-state.js';
import { systemTimers } from '../runtime/timers.js';
import { Authenticator } from './authenticator.js';
import { CredentialCache } from './credential-cache.js';
import { LoginScheduler } from './login-scheduler.js';
import { FrontDoor } from './front-door.js';
import { acquireInstanceLock, type InstanceLock } from './instance-lock.js';
import { listenOnSocket, type Listener } from './listener.js';
import { SocketPoller } from '../native/socket-poller.js';
import { StartupError, ensureRunDirectory, runFiles } from './run-directory.js';
import { takeOverSignals } from '../runtime/harden-process.js';

const WORKER_SCRIPT = fileURLToPath(new URL('../workers/worker-main.js', import.meta.url));

/** node:http and the metrics server load only with --metrics-listen (about 1 MB otherwise carried for nothing). */
const loadMetricsHttp = (): typeof import('../metrics/metrics-http.js') =>
  createRequire(import.meta.url)('../metrics/metrics-http.js') as typeof import('../metrics/metrics-http.js');

export interface RunningDaemon {
  /** Resolves with the exit status once the daemon has shut down. */
  readonly exited: Promise<number>;
}

export async function startPrimary(config: Config, log: Logger): Promise<RunningDaemon> {
  const files = runFiles(config.runDirectory);
  process.title = 'saslauthd';

  const factory = findMechanism(config.mechanism);
  if (!factory) throw new StartupError([`unknown authentication mechanism: ${config.mechanism}`], 1);

  ensureRunDirectory(files.directory);
  // As the original: the mechanism is checked in the primary, before the verbose dump, the
  // lock and any worker, so a mechanism that cannot work here leaves no lock or pid file.
  try {
    factory.check({ mechOption: config.mechOption, jobTimeoutMs: config.deadlines.jobTimeoutMs, log });
  } catch (error) {
    throw new StartupError([`failed to initialize mechanism ${factory.name}`, (error as Error).message], 1);
  }
  if (log.verbose) {
    log.debug(`num_procs  : ${config.workers}`);
    log.debug(`mech_option: ${config.mechOption ?? 'NULL'}`);
    log.debug(`run_path   : ${files.directory}`);
    log.debug(`auth_mech  : ${factory.name}`);
  }
  process.chdir(files.directory);
  process.umask(0o077);

  const lock = await acquireInstanceLock(files);
  const cleanups: (() => void)[] = [() => lock.release()];
  const cleanUp = (): void => {
    for (const cleanup of cleanups.reverse()) cleanup();
    cleanups.length = 0;
  };
  try {
    const poller = new SocketPoller((message) => log.error(message));
    cleanups.push(() => poller.stop());
    // With -n ≥ 1 workers answer clients themselves (the fast path); -n 0 keeps the
    // original's fork-per-request model, every request through the primary.
    const fastPathOn = config.workers > 0;
    const sizes: SharedStateSizes = {
      ...(config.cache.enabled ? { cache: { sizeKb: config.cache.sizeKb ?? null } } : {}),
      // old and new workers side by side while SIGHUP replaces them, and a replacement
      // starting before a killed worker's exit is seen
      activityPlaces: fastPathOn ? 2 * config.workers + 2 : 1,
    };
    const shared = createSharedState(sizes);
    const settings: WorkerSettings = {
      mechanism: factory.name,
      mechOption: config.mechOption,
      jobTimeoutMs: config.deadlines.jobTimeoutMs,
      verbose: config.verbose,
      logFormat: chooseLogFormat(config),
    };
    const hub = fastPathOn
      ? new FastPathHub({
          activity: shared.activity,
          sharedRegionFd: shared.region.fd,
          workerScript: WORKER_SCRIPT,
          settings,
          fastPath: {
            appendRealm: config.appendRealm,
            maxJobs: config.limits.maxJobsPerWorker,
            maxConnections: config.limits.maxConnections,
            shared: sizes,
          },
          poller,
          jobTimeoutMs: config.deadlines.jobTimeoutMs,
          log,
          timers: systemTimers,
        })
      : undefined;
    const pool = new WorkerPool({
      poller,
      fastPath: hub,
      size: config.workers,
      idleWorkers: config.idleWorkers,
      workerIdleTimeoutMs: config.deadlines.workerIdleTimeoutMs,
      workerScript: WORKER_SCRIPT,
      settings,
      jobTimeoutMs: config.deadlines.jobTimeoutMs,
      maxQueuedJobs: config.limits.maxQueuedJobs,
      maxJobsPerWorker: config.limits.maxJobsPerWorker,
      maxPerRequestWorkers: config.limits.maxPerRequestWorkers,
      log,
    });
    try {
      await pool.start();
    } catch (error) {
      throw new StartupError([`failed to initialize mechanism ${factory.name}`, (error as Error).message], 1);
    }
    cleanups.push(() => void pool.stop(0));
    if (log.verbose && config.workers > 0) log.debug('using process model');

    const cache = shared.cacheSection
      ? new CredentialCache({
          sizeKb: config.cache.sizeKb,
          timeoutSeconds: config.cache.timeoutSeconds,
          section: shared.cacheSection,
          digest: shared.digest,
        })
      : undefined;
    if (cache && log.verbose) {
      log.debug(`cache table: ${cache.capacity} entries (HMAC-SHA256 under a per-start key, in memory shared with the workers)`);
      log.debug(`timeout    : ${config.cache.timeoutSeconds} seconds`);
    }
    const scheduler = new LoginScheduler({
      maxSuspectChecks: config.limits.maxSuspectChecks,
      maxWaiting: config.limits.maxQueuedJobs,
      // one login alone may use the whole pool, never more (and one at a time once it failed)
      maxChecksPerLogin: config.workers > 0 ? config.workers : config.limits.maxPerRequestWorkers,
      ...(hub ? { runningElsewhere: (login: string) => hub.checksOfLogin(login) } : {}),
    });
    const metrics = shared.counters;
    const authenticator = new Authenticator({
      mechanism: factory.name,
      appendRealm: config.appendRealm,
      log,
      runJob: (job, lane) => pool.submit(job, lane),
      scheduler,
      jobTimeoutMs: config.deadlines.jobTimeoutMs,
      cache,
      metrics,
      digest: shared.digest,
      suspects: shared.suspects,
    });
    const front = new FrontDoor(config, log, authenticator, poller, (count) => shared.connections.publish(count));
    let stopping = false;
    const operations = new Operations({
      version: packageVersion(),
      mechanism: factory.name,
      pool,
      authenticator,
      scheduler,
      front,
      cache,
      metrics,
      log,
      stopping: () => stopping,
    });
    // The admin's doors open before the clients' one: a failure leaves no socket behind.
    const control = await listenForControl(controlSocketPath(files.directory), operations, log);
    cleanups.push(() => control.close());
    let metricsListener: MetricsListener | undefined;
    if (config.metricsListen) {
      metricsListener = await loadMetricsHttp().listenForMetrics(config.metricsListen, (format) => operations.metricsText(format), log);
      cleanups.push(() => metricsListener?.close());
      log.info(`metrics on http://${formatAddress(metricsListener.address)}/metrics`);
    }
    const server = await listenOnSocket(
      files.socket,
      poller,
      (fd) => front.accept(fd),
      (code) => log.error(`socket accept failure: ${code}`),
    );
    cleanups.push(() => server.close());
    hub?.connect({
      adopt: (fd, handoff) => front.adopt(fd, handoff),
      answerTimedOut: (fd, subject) =>
        front.answerAtOnce(fd, authenticator.notCheckedInWorker(subject, POOL_REPLY.timeout, config.deadlines.jobTimeoutMs)),
      fill: cache ? (fill) => cache.rememberDigests(fill.keyDigest, fill.mac, fill.generation, fill) : undefined,
      workerAccepting: () => server.requeue(),
      overflow: (takeConnections) => server.setAccepting(takeConnections),
      handoffDropped: () => server.reportAcceptFailure('EMFILE'),
      retire: (worker) => pool.retireWorker(worker),
      killing: (worker) => pool.markKilled(worker),
      tick: () => {
        scheduler.retry();
        pool.retryDispatch();
      },
    });
    hub?.listen(server.fd);
    lock.announce(); // the socket is ours: no other daemon answered on it

    log.info(`master pid is: ${process.pid}`);
    log.info(`listening on socket: ${files.socket}`);
    notifySystemd({ READY: 1, STATUS: `listening on socket: ${files.socket}`, MAINPID: process.pid });
    cleanups.length = 0;

    const exited = new Promise<number>((resolve) => {
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        notifySystemd({ STOPPING: 1, STATUS: `${signal} received: shutting down` });
        log.debug(`${signal} received: shutting down`);
        control.close(); // no commands to a daemon that is going away; the file goes now
        metricsListener?.close();
        void shutdown({ server, hub, poller, front, authenticator, pool, lock, files, config, log }).then(resolve);
      };
      // The real handlers replace the early ones (runtime/harden-process.ts); a signal that
      // came during start-up is acted on now.
      takeOverSignals({
        SIGTERM: () => stop('SIGTERM'),
        SIGINT: () => stop('SIGINT'),
        // SIGHUP: forget cached credentials and start fresh workers (control/operations.ts).
        SIGHUP: () => void operations.reload('SIGHUP received'),
        SIGUSR1: () => log.info(operations.statusLine()),
        SIGUSR2: () => {},
      });
    });
    return { exited };
  } catch (error) {
    cleanUp();
    throw error;
  }
}

/** What a shutdown stops, in this order: listener, front door, authenticator, pool, poller, lock. */
interface RunningParts {
  readonly server: Listener;
  /** Workers answering clients themselves (-n ≥ 1). */
  readonly hub: FastPathHub | undefined;
  readonly poller: SocketPoller;
  readonly front: FrontDoor;
  readonly authenticator: Authenticator;
  readonly pool: WorkerPool;
  readonly lock: InstanceLock;
  readonly files: ReturnType<typeof runFiles>;
  readonly config: Config;
  readonly log: Logger;
}

async function shutdown({ server, hub, poller, front, authenticator, pool, lock, files, config, log }: RunningParts): Promise<number> {
  const socketInode = server.fromSystemd ? undefined : inodeOf(files.socket); // systemd's socket stays
  server.close(); // no new connections; the ones open still get their answers
  hub?.quiesce(); // nor do workers take any
  authenticator.cutFailureDelays();
  const deadline = Date.now() + config.deadlines.shutdownTimeoutMs;
  await hub?.quiet(config.deadlines.shutdownTimeoutMs); // checks running in workers end (a NO comes to us)
  await front.quiet(Math.max(0, deadline - Date.now()));
  await pool.stop(Math.max(0, deadline - Date.now()), deadline);
  front.closeAll();
  poller.stop();
  removeIfSame(files.socket, socketInode);
  lock.release(); // removes the pid file too
  log.debug(`pid file removed: ${files.pidFile}`);
  log.debug(`socket removed: ${files.socket}`);
  log.info('master exited: 0');
  return 0;
}

function inodeOf(path: string): number | undefined {
  try {
    return lstatSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Removes our socket file, never one a later daemon may have bound in its place. */
function removeIfSame(path: string, inode: number | undefined): void {
  if (inode !== undefined && inodeOf(path) === inode) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}
