#!/usr/bin/env node
/**
 * `testsaslauthd`, compatible with Cyrus SASL's: same options (-u -p -r -s -f -R), same
 * output (`0: OK "Success."` / `0: NO "authentication failed"`), same exit status (the last
 * attempt's: 0 for OK, 255 otherwise; 1 for usage). Adds `-a ip;port` to send the client
 * address as a 5th field, and a deadline on each attempt.
 */
import { Command, CommanderError } from 'commander';
import { askSaslauthd, ClientError } from '../protocol/client.js';

const DEFAULT_SOCKET = '/var/run/saslauthd/mux';
const DEFAULT_SERVICE = 'imap';
/** The C tool waits forever; a hung daemon should not hang scripts that call us. */
const ATTEMPT_DEADLINE_MS = 60_000;

const USAGE = (name: string): string =>
  `${name}: usage: ${name} -u username -p password\n` +
  `              [-r realm] [-s servicename]\n` +
  `              [-f socket path] [-R repeatnum]\n` +
  `              [-a client address (ip;port)]\n`;

interface Options {
  u?: string;
  p?: string;
  r?: string;
  s?: string;
  f?: string;
  R?: string;
  a?: string;
}

/** Arguments are bytes to the C tool; keep them byte-exact (latin1 round-trip of argv is lossy). */
function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

async function main(argv: readonly string[]): Promise<number> {
  const name = 'testsaslauthd';
  const program = new Command(name)
    .helpOption(false)
    .allowExcessArguments(true)
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .option('-u <username>')
    .option('-p <password>')
    .option('-r <realm>')
    .option('-s <servicename>')
    .option('-f <socketpath>')
    .option('-R <repeatnum>')
    .option('-a <clientaddress>');
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    process.stderr.write(USAGE(name));
    return 1;
  }
  const options = program.opts<Options>();
  if (options.u === undefined || options.p === undefined) {
    process.stderr.write(USAGE(name));
    return 1;
  }
  const repeat = Math.max(1, Number.parseInt(options.R ?? '1', 10) || 1);
  const fields = [bytes(options.u), bytes(options.p), bytes(options.s ?? DEFAULT_SERVICE), bytes(options.r ?? '')];
  if (options.a !== undefined) fields.push(bytes(options.a));

  let status = 0;
  for (let attempt = 0; attempt < repeat; attempt++) {
    process.stdout.write(`${attempt}: `);
    try {
      const reply = await askSaslauthd({ socketPath: options.f ?? DEFAULT_SOCKET, fields, deadlineMs: ATTEMPT_DEADLINE_MS });
      const ok = reply.subarray(0, 2).toString('latin1') === 'OK';
      process.stdout.write(ok ? 'OK "Success."\n' : 'NO "authentication failed"\n');
      status = ok ? 0 : 255;
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      process.stderr.write(clientErrorMessage(error));
      status = 255;
    }
  }
  return status;
}

/** The C tool's messages: perror() for connect, fixed texts for the rest. */
function clientErrorMessage(error: ClientError): string {
  switch (error.step) {
    case 'connect':
      return `connect() : ${error.detail}\n`;
    case 'write':
      return `write failed (${error.detail})\n`;
    case 'size read':
      return `size read failed (${error.detail})\n`;
    case 'read':
      return `read failed (${error.detail})\n`;
    case 'bad response':
      return 'bad response from saslauthd\n';
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`testsaslauthd: ${(error as Error).message}\n`);
    process.exit(255);
  },
);
