/**
 * The kerberos5 mechanism's settings, from the `-O` file, else /etc/saslauthd.conf when it
 * exists (the original's auth_krb5_init): keys are read with config-file.ts, which also
 * accepts the other mechanisms' keys (ldap_*, httpform_*) in the same file.
 *
 * Original keys: krb5_keytab, krb5_verify_principal, krb5_servername,
 * krb5_conv_krb4_instance, krb5_<service>_instance. Ours: krb5_timeout (seconds).
 */
import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG_PATH, readConfigFile, type ConfigEntries } from '../config-file.js';

/** The original's default service name for the keytab check (a host/… key in the keytab). */
export const DEFAULT_VERIFY_PRINCIPAL = 'host';
/**
 * How long one request may wait on the KDC. libkrb5 1.20 has no setting for it: against a
 * KDC that accepts and never answers it tries for ~27 s per KDC, close to --job-timeout's
 * default 30 s. Keep it below --job-timeout.
 */
export const DEFAULT_KRB5_TIMEOUT_SECONDS = 10;
/** Bound for krb5_timeout: past an hour a setting is a typo, not a wish. */
const MAX_KRB5_TIMEOUT_SECONDS = 3_600;

export interface Krb5Settings {
  /** Which file the settings came from, or undefined when there was none. */
  readonly configPath: string | undefined;
  /** krb5_keytab; undefined = libkrb5's default keytab. */
  readonly keytab: string | undefined;
  /** krb5_verify_principal: the service part of the key the credentials are checked with. */
  readonly verifyPrincipal: string;
  /** krb5_servername: its host part; undefined = this host's name. */
  readonly serverName: string | undefined;
  /** krb5_conv_krb4_instance: `user.inst` logins become `user/inst`. */
  readonly convertKrb4Instance: boolean;
  /** krb5_timeout, in milliseconds. */
  readonly timeoutMs: number;
  /** All entries, for krb5_<service>_instance. */
  readonly entries: ConfigEntries;
}

/**
 * The original's cfile_getswitch: a value starting with 0, n, of or f is off; 1, y, on or t
 * is on; anything else (upper case included) leaves the default.
 */
export function configSwitch(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (/^(0|n|of|f)/.test(value)) return false;
  if (/^(1|y|on|t)/.test(value)) return true;
  return fallback;
}

/** The instance forced for a service (`krb5_<service>_instance`, the service name as sent). */
export function forcedInstance(settings: Pick<Krb5Settings, 'entries'>, service: string): string | undefined {
  // The original looks the key up as built, case-sensitively, among keys it lower-cased
  // when reading: a service name with capitals never matches. So here.
  return settings.entries.get(`krb5_${service}_instance`);
}

/** Builds the settings from parsed entries; throws an Error naming the bad key. */
export function settingsFromEntries(entries: ConfigEntries, configPath: string | undefined): Krb5Settings {
  let timeoutMs = DEFAULT_KRB5_TIMEOUT_SECONDS * 1000;
  const timeout = entries.get('krb5_timeout');
  if (timeout !== undefined) {
    const seconds = /^\d+(\.\d+)?$/.test(timeout) ? Number(timeout) : NaN;
    if (!(seconds > 0 && seconds <= MAX_KRB5_TIMEOUT_SECONDS)) {
      throw new Error(`${configPath ?? 'config'}: krb5_timeout must be a number of seconds above 0, at most ${MAX_KRB5_TIMEOUT_SECONDS}`);
    }
    timeoutMs = Math.ceil(seconds * 1000);
  }
  return {
    configPath,
    keytab: entries.get('krb5_keytab'),
    verifyPrincipal: entries.get('krb5_verify_principal') ?? DEFAULT_VERIFY_PRINCIPAL,
    serverName: entries.get('krb5_servername'),
    convertKrb4Instance: configSwitch(entries.get('krb5_conv_krb4_instance'), false),
    timeoutMs,
    entries,
  };
}

/**
 * Reads the settings as the original does: the `-O` file (which must exist), else
 * /etc/saslauthd.conf if it exists, else none (every default).
 */
export function readKrb5Settings(mechOption: string | undefined): Krb5Settings {
  if (mechOption !== undefined && mechOption !== '') return settingsFromEntries(readConfigFile(mechOption), mechOption);
  if (existsSync(DEFAULT_CONFIG_PATH)) return settingsFromEntries(readConfigFile(DEFAULT_CONFIG_PATH), DEFAULT_CONFIG_PATH);
  return settingsFromEntries(new Map(), undefined);
}
