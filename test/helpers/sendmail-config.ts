/**
 * The admin's sendmail.mc of the seed scenario (Debian's m4 configuration, as the howtos
 * write it) for the tests that run Debian's sendmail in front of a saslauthd: on this machine
 * (sendmail-submission, fail2ban-sendmail) and in the trixie container (debian-trixie).
 */
import { tcpAccepts } from './tcp-probe.js';

export interface SendmailListener {
  readonly name: string;
  readonly port: number;
  /** DAEMON_OPTIONS modifiers: `Ea` (AUTH required, no ETRN), `A` (no AUTH). */
  readonly modifiers: string;
}

export interface SendmailMcOptions {
  /** Where the pid file, queue and service switch live (not world-writable: sendmail refuses). */
  readonly directory: string;
  readonly listeners: readonly SendmailListener[];
  /** confAUTH_OPTIONS: `p y` (no plaintext AUTH before STARTTLS), `A`… */
  readonly authOptions: string;
  /** STARTTLS with this certificate (and key) as server certificate and CA. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

export function sendmailMc(options: SendmailMcOptions): string {
  const { directory, listeners, authOptions, tls } = options;
  const lines = [
    'divert(-1)dnl',
    'divert(0)dnl',
    "define(`_USE_ETC_MAIL_')dnl",
    "include(`/usr/share/sendmail/cf/m4/cf.m4')dnl",
    "OSTYPE(`debian')dnl",
    "DOMAIN(`debian-mta')dnl",
    "undefine(`confHOST_STATUS_DIRECTORY')dnl",
    "FEATURE(`no_default_msa')dnl",
    "define(`confDOMAIN_NAME', `sts.localdomain')dnl",
    `define(\`confPID_FILE', \`${directory}/sendmail.pid')dnl`,
    `define(\`QUEUE_DIR', \`${directory}/mqueue')dnl`,
    "define(`confDELIVERY_MODE', `queueonly')dnl",
    `define(\`confSERVICE_SWITCH_FILE', \`${directory}/service.switch')dnl`,
    ...listeners.map(
      ({ name, port, modifiers }) => `DAEMON_OPTIONS(\`Family=inet, Name=${name}, Port=${port}, Addr=127.0.0.1, M=${modifiers}')dnl`,
    ),
    `define(\`confAUTH_OPTIONS', \`${authOptions}')dnl`,
    "include(`/etc/mail/sasl/sasl.m4')dnl",
    ...(tls
      ? [
          "include(`/etc/mail/tls/starttls.m4')dnl",
          `define(\`confSERVER_CERT', \`${tls.cert}')dnl`,
          `define(\`confSERVER_KEY', \`${tls.key}')dnl`,
          `define(\`confCACERT', \`${tls.cert}')dnl`,
        ]
      : []),
    'MAILER_DEFINITIONS',
    "MAILER(`local')dnl",
    "MAILER(`smtp')dnl",
  ];
  return `${lines.join('\n')}\n`;
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForTcpPort(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await tcpAccepts(port))) {
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
