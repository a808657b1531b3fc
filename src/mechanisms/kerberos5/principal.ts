/**
 * The principal name a login is checked as (the original's form_principal_name):
 * login[/instance][@realm], where
 *  - with krb5_conv_krb4_instance on, the first `.` of the login becomes `/`
 *    (Kerberos 4 `user.instance` names);
 *  - krb5_<service>_instance forces an instance: a login naming another instance is refused,
 *    one naming the same instance is kept as it is;
 *  - `@realm` is appended when the request's realm is not empty.
 *
 * Difference (cyrus-sasl#832): under `-r` the login reaches the mechanism as `login@realm`
 * already, and the original appended the realm a second time (`bob@R@R`, which libkrb5
 * refuses). Here a login that already ends in `@realm` has that suffix taken off first, so
 * the rules above apply to the user part and the realm is appended once: `bob/inst@R`.
 */
import type { Krb5Settings } from './settings.js';
import { forcedInstance } from './settings.js';

/** The original's principal buffer (2048 bytes with its NUL): a longer name is refused. */
export const MAX_PRINCIPAL_BYTES = 2047;

/** The principal name's bytes, or null when the rules refuse the login. */
export function formPrincipalName(
  login: Buffer,
  service: Buffer,
  realm: Buffer,
  settings: Pick<Krb5Settings, 'entries' | 'convertKrb4Instance'>,
): Buffer | null {
  let user = login;
  if (realm.length > 0) {
    const suffix = Buffer.concat([Buffer.from('@'), realm]);
    if (user.length > suffix.length && user.subarray(user.length - suffix.length).equals(suffix)) {
      user = user.subarray(0, user.length - suffix.length);
    }
  }
  user = Buffer.from(user); // a copy: the conversion below writes into it
  if (settings.convertKrb4Instance) {
    const dot = user.indexOf(0x2e);
    if (dot >= 0) user[dot] = 0x2f;
  }
  let instance: Buffer | undefined;
  const forced = forcedInstance(settings, service.toString('utf8'));
  if (forced !== undefined) {
    const slash = user.indexOf(0x2f);
    const forcedBytes = Buffer.from(forced, 'utf8');
    if (slash >= 0) {
      // A user may name the forced instance himself, but never another one.
      if (!user.subarray(slash + 1).equals(forcedBytes)) return null;
    } else {
      instance = forcedBytes;
    }
  }
  const parts = [user];
  if (instance !== undefined) parts.push(Buffer.from('/'), instance);
  if (realm.length > 0) parts.push(Buffer.from('@'), realm);
  const name = Buffer.concat(parts);
  return name.length > MAX_PRINCIPAL_BYTES || name.length === 0 ? null : name;
}
