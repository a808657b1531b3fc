/**
 * The `/etc/saslauthd.conf` format shared by the ldap, kerberos5 and httpform mechanisms
 * (the original's lak.c and cfile.c readers): one `key: value` per line, `#` starts a
 * comment line, blank lines are skipped, keys are case-insensitive, the value is what
 * follows the colon with surrounding blanks removed. A line with no colon, an empty key or
 * an empty value makes the whole file invalid, as in the original.
 *
 * Reading is separate from parsing so that mechanisms can parse text in unit tests and
 * say which file and line was wrong at start.
 */
import { readFileSync } from 'node:fs';

/** Where the original looks when `-O` names no file. */
export const DEFAULT_CONFIG_PATH = '/etc/saslauthd.conf';

/** A config file is a few dozen lines; anything this large is not one. */
const MAX_CONFIG_BYTES = 1024 * 1024;

export class ConfigFileError extends Error {
  constructor(
    readonly path: string,
    readonly line: number | undefined,
    reason: string,
  ) {
    super(line === undefined ? `${path}: ${reason}` : `${path}:${line}: ${reason}`);
    this.name = 'ConfigFileError';
  }
}

/** Keys (lower case) to values, in file order; a repeated key keeps its last value. */
export type ConfigEntries = ReadonlyMap<string, string>;

/** Parses the text of a config file; `path` only names it in errors. */
export function parseConfigText(text: string, path: string): ConfigEntries {
  const entries = new Map<string, string>();
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index]!.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw new ConfigFileError(path, index + 1, 'no ":" between key and value');
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === '') throw new ConfigFileError(path, index + 1, 'empty key');
    if (value === '') throw new ConfigFileError(path, index + 1, `empty value for ${key}`);
    entries.set(key, value);
  }
  return entries;
}

/**
 * Reads and parses a config file. `required` false: a missing file gives no entries (the
 * kerberos5 mechanism reads /etc/saslauthd.conf only "if it exists").
 */
export function readConfigFile(path: string, required = true): ConfigEntries {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!required && code === 'ENOENT') return new Map();
    throw new ConfigFileError(path, undefined, `cannot be read (${code ?? (error as Error).message})`);
  }
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigFileError(path, undefined, `larger than ${MAX_CONFIG_BYTES} bytes`);
  return parseConfigText(text.toString('utf8'), path);
}

/** The `-O` value as a config path, else the default. */
export function configPathFor(mechOption: string | undefined): string {
  return mechOption !== undefined && mechOption !== '' ? mechOption : DEFAULT_CONFIG_PATH;
}
