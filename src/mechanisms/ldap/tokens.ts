/**
 * %-tokens of the ldap config values (lak.c's lak_expand_tokens), with every inserted value
 * escaped for where it goes: RFC 4515 in a search filter, RFC 4514 in a DN. The original
 * inserted them raw, so a login `*` or `x)(uid=*` rewrote its filter; here a value can only
 * ever be a value.
 *
 *   %%  a literal %          %u  the login                %U  the login before the first `@`
 *   %d  the login after the first `@` (empty without one: observed on Debian 12)
 *   %1…%9  the labels of %d, %1 the rightmost        %s  the service
 *   %r  the realm (ldap_default_realm when empty)     %R  `@` + %r, or nothing
 *   %D  the user's DN (group checks only)
 *
 * Values travel as bytes. ldapts writes strings as UTF-8, so a value that is not valid
 * UTF-8 cannot be sent byte-exact in a filter: `expand` then returns undefined and the caller
 * treats the user as not found (the server would not have matched such bytes anyway).
 */

export interface TokenValues {
  readonly login: Buffer;
  readonly service: Buffer;
  readonly realm: Buffer;
  /** The user's DN, once known. */
  readonly userDn?: string;
}

/** Turns a value into text safe for one context, or undefined when it cannot be expressed. */
export type Escaper = (value: Buffer) => string | undefined;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes as UTF-8 text, or undefined when they are not valid UTF-8. */
export function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function hex(code: number): string {
  return `\\${code.toString(16).padStart(2, '0')}`;
}

/** RFC 4515 §3: `*`, `(`, `)`, `\` and NUL escaped as \XX; control bytes too, for readable logs. */
export const escapeFilterValue: Escaper = (value) => {
  const text = decodeUtf8(value);
  if (text === undefined) return undefined;
  let out = '';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    out += char === '*' || char === '(' || char === ')' || char === '\\' || code < 0x20 || code === 0x7f ? hex(code) : char;
  }
  return out;
};

/** RFC 4514 §2.4: the special characters backslash-escaped, a leading `#`/space and trailing space too. */
export const escapeDnValue: Escaper = (value) => {
  const text = decodeUtf8(value);
  if (text === undefined) return undefined;
  const chars = [...text];
  let out = '';
  chars.forEach((char, index) => {
    const code = char.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) out += hex(code);
    else if ('"+,;<>\\='.includes(char)) out += `\\${char}`;
    else if (index === 0 && (char === '#' || char === ' ')) out += `\\${char}`;
    else if (index === chars.length - 1 && char === ' ') out += `\\${char}`;
    else out += char;
  });
  return out;
};

function beforeAt(login: Buffer): Buffer {
  const at = login.indexOf(0x40);
  return at < 0 ? login : login.subarray(0, at);
}

function afterAt(login: Buffer): Buffer {
  const at = login.indexOf(0x40);
  return at < 0 ? Buffer.alloc(0) : login.subarray(at + 1);
}

/** Label `n` (1 = rightmost) of a dotted domain, or empty. */
function domainLabel(domain: Buffer, n: number): Buffer {
  const labels = domain.toString('latin1').split('.').filter((label) => label !== '');
  const label = labels[labels.length - n];
  return label === undefined ? Buffer.alloc(0) : Buffer.from(label, 'latin1');
}

/**
 * Expands `template` with `values`, each escaped by `escape`; undefined when a value cannot be
 * expressed. An unknown `%x` is kept as it is, and a trailing lone `%` too.
 */
export function expand(template: string, values: TokenValues, escape: Escaper): string | undefined {
  let out = '';
  for (let index = 0; index < template.length; index += 1) {
    const char = template[index]!;
    const token = template[index + 1];
    if (char !== '%' || token === undefined) {
      out += char;
      continue;
    }
    index += 1;
    let value: Buffer | undefined;
    switch (token) {
      case '%': out += '%'; continue;
      case 'u': value = values.login; break;
      case 'U': value = beforeAt(values.login); break;
      case 'd': value = afterAt(values.login); break;
      case 's': value = values.service; break;
      case 'r': value = values.realm; break;
      case 'R': value = values.realm.length > 0 ? Buffer.concat([Buffer.from('@'), values.realm]) : Buffer.alloc(0); break;
      case 'D': value = Buffer.from(values.userDn ?? '', 'utf8'); break;
      default:
        if (token >= '1' && token <= '9') value = domainLabel(afterAt(values.login), Number(token));
    }
    if (value === undefined) {
      out += `%${token}`;
      continue;
    }
    const escaped = escape(value);
    if (escaped === undefined) return undefined;
    out += escaped;
  }
  return out;
}
