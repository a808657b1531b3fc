/** Where the compiled daemon, tools and Debian's C oracles live. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** dist/test/helpers → repository root */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SASLAUTHD_JS = fileURLToPath(new URL('../../src/cli/saslauthd.js', import.meta.url));
export const TESTSASLAUTHD_JS = fileURLToPath(new URL('../../src/cli/testsaslauthd.js', import.meta.url));

/** Debian's C daemon: diverted to saslauthd.cyrus while our package is installed. */
export const C_SASLAUTHD = existsSync('/usr/sbin/saslauthd.cyrus') ? '/usr/sbin/saslauthd.cyrus' : '/usr/sbin/saslauthd';
export const C_TESTSASLAUTHD = '/usr/sbin/testsaslauthd';
export const PAM_WRAPPER_LIBRARY = '/usr/lib/x86_64-linux-gnu/libpam_wrapper.so';
export const PAM_MATRIX_MODULE = '/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so';
export const PAM_EXEC_MODULE = '/usr/lib/x86_64-linux-gnu/security/pam_exec.so';
export const PAM_PERMIT_MODULE = '/usr/lib/x86_64-linux-gnu/security/pam_permit.so';
export const PAM_SUCCEED_IF_MODULE = '/usr/lib/x86_64-linux-gnu/security/pam_succeed_if.so';
export const PAM_FAILDELAY_MODULE = '/usr/lib/x86_64-linux-gnu/security/pam_faildelay.so';
export const SASLAUTHDCTL_JS = fileURLToPath(new URL('../../src/cli/saslauthdctl.js', import.meta.url));
