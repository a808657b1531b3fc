/**
 * The POST body of the httpform mechanism, as the original builds it (auth_httpform.c
 * create_post_data/url_escape): `httpform_data` with `%u` (login), `%p` (password), `%r`
 * (realm) replaced by their URL-escaped bytes, `%%` by `%`; any other `%x` stays as it is.
 * Escaping keeps only A–Z, a–z and 0–9 and writes every other byte as `%XX` (upper case), so
 * no value can add a field or end the body.
 */

const PERCENT = 0x25;

function isUnreserved(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

/** `value` with every byte but [A-Za-z0-9] as %XX. */
export function urlEscape(value: Buffer): Buffer {
  const out = Buffer.alloc(value.length * 3);
  let length = 0;
  for (const byte of value) {
    if (isUnreserved(byte)) {
      out[length++] = byte;
    } else {
      out[length++] = PERCENT;
      length += out.write(byte.toString(16).toUpperCase().padStart(2, '0'), length, 'latin1');
    }
  }
  const result = Buffer.from(out.subarray(0, length));
  out.fill(0);
  return result;
}

export interface FormValues {
  readonly login: Buffer;
  readonly password: Buffer;
  readonly realm: Buffer;
}

/** The body for one request; the caller zeroes it once sent (it holds the password). */
export function expandFormData(template: Buffer, values: FormValues): Buffer {
  const escaped = { u: urlEscape(values.login), p: urlEscape(values.password), r: urlEscape(values.realm) };
  const parts: Buffer[] = [];
  let start = 0;
  try {
    for (let index = 0; index < template.length; index++) {
      if (template[index] !== PERCENT) continue;
      parts.push(template.subarray(start, index));
      const next = template[index + 1];
      const value = next === 0x75 ? escaped.u : next === 0x70 ? escaped.p : next === 0x72 ? escaped.r : undefined;
      if (value !== undefined) {
        parts.push(value);
      } else if (next === PERCENT) {
        parts.push(Buffer.from('%'));
      } else {
        // Unknown token (or a % at the very end): kept as written.
        parts.push(template.subarray(index, index + (next === undefined ? 1 : 2)));
      }
      index += next === undefined ? 0 : 1;
      start = index + 1;
    }
    parts.push(template.subarray(start));
    return Buffer.concat(parts);
  } finally {
    escaped.u.fill(0);
    escaped.p.fill(0);
    escaped.r.fill(0);
  }
}
