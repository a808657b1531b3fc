/**
 * The benchmark's scenarios. Each one runs against both daemons with the same load; a
 * scenario names the daemon configuration it needs (PAM world, cache) so one daemon start
 * serves every scenario of a configuration.
 */
import type { MechanismWorld } from './local-worlds.js';
import { MANY_PASSWORD_PREFIX, MANY_USERS, MANY_USERS_PREFIX, MATRIX_USER, type UnixWorld } from './pam-worlds.js';
import type { LoadSpec } from './tools.js';

/** pam worlds (pam_matrix, pam_unix), or another mechanism's backend (-a shadow, -a sasldb). */
export type World = 'matrix' | 'unix' | 'shadow' | 'sasldb';

/** The backends of the non-PAM scenarios that this run could set up. */
export interface MechanismWorlds {
  readonly shadow?: MechanismWorld | undefined;
  readonly sasldb?: MechanismWorld | undefined;
}

export interface Durations {
  readonly warmupSeconds: number;
  readonly seconds: number;
  /** pam_unix scenarios: the hash makes each request slow, so they run longer. */
  readonly unixSeconds: number;
}

/** A load without its socket (filled in per daemon). */
export type LoadPlan = Omit<LoadSpec, 'socket'>;

export interface Scenario {
  readonly id: string;
  readonly title: string;
  readonly world: World;
  /** Start the daemons with `-c`. */
  readonly cache: boolean;
  /** The measured load: its figures are the scenario's. */
  readonly load: LoadPlan;
  /** A load running at the same time whose figures are only context (wrong passwords). */
  readonly background?: LoadPlan;
}

/** Concurrency levels of the pam_matrix scenarios. */
export const CONCURRENCY = [1, 4, 16, 64] as const;
/** Clients sending wrong pam_unix passwords while one client logs in correctly. */
const WRONG_PASSWORD_CLIENTS = 20;
/** Connections held open without a request during the idle-connections scenario. */
const IDLE_CONNECTIONS = 500;
/** Clients of the pam_unix and shadow throughput scenarios: more than -n, so every worker is busy. */
const UNIX_CLIENTS = 8;
/** Clients of the guessing scenarios (one account, many accounts) and of the burst. */
const GUESSING_CLIENTS = 20;
const BURST_CLIENTS = 300;
/** Distinct unknown accounts the spraying clients cycle through. */
const SPRAYED_ACCOUNTS = 1000;
/** Concurrency levels of the sasldb scenarios (a cheap backend: the daemon's own cost shows). */
const SASLDB_CONCURRENCY = [1, 16] as const;
/** A request a daemon does not answer by then is an error (the C daemon can block forever). */
const REQUEST_TIMEOUT_MS = 5_000;
/** The right login behind 20 wrong ones may wait seconds at the C daemon: still measured. */
const SLOW_REQUEST_TIMEOUT_MS = 60_000;

export function scenarios(durations: Durations, unix: UnixWorld | undefined, worlds: MechanismWorlds = {}): Scenario[] {
  const { warmupSeconds, seconds, unixSeconds } = durations;
  const matrix = {
    login: MATRIX_USER.login,
    password: MATRIX_USER.password,
    service: MATRIX_USER.service,
    expect: 'OK',
    warmupSeconds,
    seconds,
    timeoutMs: REQUEST_TIMEOUT_MS,
  };
  const list: Scenario[] = [];
  for (const clients of CONCURRENCY) {
    list.push({ id: `matrix-${clients}`, title: `pam_matrix uncached, ${clients} clients`, world: 'matrix', cache: false, load: { ...matrix, clients } });
  }
  for (const clients of CONCURRENCY) {
    list.push({ id: `cache-${clients}`, title: `cache hits (-c), ${clients} clients`, world: 'matrix', cache: true, load: { ...matrix, clients } });
  }
  const many = { ...matrix, login: MANY_USERS_PREFIX, password: MANY_PASSWORD_PREFIX, users: MANY_USERS, clients: 16 };
  list.push({ id: 'many-users', title: `${MANY_USERS} distinct users, uncached, 16 clients`, world: 'matrix', cache: false, load: many });
  list.push({ id: 'many-users-cache', title: `${MANY_USERS} distinct users, -c, 16 clients`, world: 'matrix', cache: true, load: many });
  list.push({
    id: 'idle-500',
    title: `pam_matrix, 16 clients + ${IDLE_CONNECTIONS} idle connections`,
    world: 'matrix',
    cache: false,
    load: { ...matrix, clients: 16, idle: IDLE_CONNECTIONS, timeoutMs: 2_000 },
  });
  if (unix) {
    const right = {
      login: unix.user,
      password: unix.password,
      service: unix.service,
      expect: 'OK',
      warmupSeconds,
      seconds: unixSeconds,
      timeoutMs: REQUEST_TIMEOUT_MS,
    };
    list.push({ id: 'unix', title: `pam_unix (yescrypt), ${UNIX_CLIENTS} clients`, world: 'unix', cache: false, load: { ...right, clients: UNIX_CLIENTS } });
    // The wrong-password clients start with the measured one; its warm-up lets them pile up first.
    const rightWarmup = Math.max(warmupSeconds, 2);
    list.push({
      id: 'unix-wrong-20',
      title: `pam_unix: 1 right login while ${WRONG_PASSWORD_CLIENTS} clients send wrong passwords`,
      world: 'unix',
      cache: false,
      load: { ...right, clients: 1, warmupSeconds: rightWarmup, timeoutMs: SLOW_REQUEST_TIMEOUT_MS },
      background: {
        ...right,
        password: 'not-the-password',
        expect: 'NO PAM auth error',
        clients: WRONG_PASSWORD_CLIENTS,
        warmupSeconds: 0,
        seconds: rightWarmup + unixSeconds,
        timeoutMs: SLOW_REQUEST_TIMEOUT_MS,
      },
    });
    // Password guessing: the background's replies per second are the guesses a daemon lets
    // through; the measured client is a right login to an account nobody attacks.
    const other = { ...right, login: unix.otherUser, clients: 1, warmupSeconds: rightWarmup, timeoutMs: SLOW_REQUEST_TIMEOUT_MS };
    const guessing = { ...right, expect: 'NO PAM auth error', warmupSeconds: 0, seconds: rightWarmup + unixSeconds, timeoutMs: SLOW_REQUEST_TIMEOUT_MS };
    list.push({
      id: 'guess-one-account',
      title: `guessing: ${GUESSING_CLIENTS} clients, wrong passwords for one account; right login to another`,
      world: 'unix',
      cache: false,
      load: other,
      background: { ...guessing, password: 'not-the-password-', guesses: true, clients: GUESSING_CLIENTS },
    });
    list.push({
      id: 'guess-many-accounts',
      title: `guessing: ${GUESSING_CLIENTS} clients, wrong passwords for ${SPRAYED_ACCOUNTS} accounts; right login to another`,
      world: 'unix',
      cache: false,
      load: other,
      background: { ...guessing, login: `${unix.user}g`, password: 'not-the-password-', users: SPRAYED_ACCOUNTS, clients: GUESSING_CLIENTS },
    });
    list.push({
      id: 'burst-300',
      title: `pam_unix nodelay: ${BURST_CLIENTS} clients repeat one stale password; right password, same account`,
      world: 'unix',
      cache: false,
      load: { ...right, service: unix.nodelayService, clients: 1, warmupSeconds: rightWarmup, timeoutMs: SLOW_REQUEST_TIMEOUT_MS },
      // as the scenario: 300 idle connections beside the burst
      background: { ...guessing, service: unix.nodelayService, password: 'stale-password', clients: BURST_CLIENTS, idle: BURST_CLIENTS },
    });
  }
  list.push(...mechanismScenarios(durations, worlds));
  return list;
}

/** shadow (yescrypt: the hash is the cost) and sasldb (cheap), each against both daemons. */
function mechanismScenarios(durations: Durations, worlds: MechanismWorlds): Scenario[] {
  const list: Scenario[] = [];
  const base = (world: MechanismWorld) => ({
    login: world.login,
    password: world.password,
    service: world.service,
    expect: 'OK',
    warmupSeconds: durations.warmupSeconds,
    timeoutMs: REQUEST_TIMEOUT_MS,
  });
  if (worlds.shadow) {
    const load = { ...base(worlds.shadow), seconds: durations.unixSeconds, clients: UNIX_CLIENTS };
    list.push({ id: 'shadow', title: `-a shadow (yescrypt), ${UNIX_CLIENTS} clients`, world: 'shadow', cache: false, load });
  }
  if (worlds.sasldb) {
    for (const clients of SASLDB_CONCURRENCY) {
      const load = { ...base(worlds.sasldb), seconds: durations.seconds, clients };
      list.push({ id: `sasldb-${clients}`, title: `-a sasldb, ${clients} clients`, world: 'sasldb', cache: false, load });
    }
  }
  return list;
}
