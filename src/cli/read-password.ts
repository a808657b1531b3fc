/**
 * Reads a password for `saslauthdctl test`: from the terminal without echo, or the first
 * line of standard input when it is not a terminal (scripts: `printf '%s\n' "$pw" | …`).
 * Never from argv, where `ps` shows it to every user. Returns bytes; the caller zeroes them.
 */

/** Far longer than any real password; a bound on what is read and kept. */
const MAX_PASSWORD_BYTES = 1024;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = 0x08;
const DELETE = 0x7f;

export class PasswordInputError extends Error {}

export function readPassword(prompt: string): Promise<Buffer> {
  return process.stdin.isTTY ? readFromTerminal(prompt) : readFirstLine();
}

function readFromTerminal(prompt: string): Promise<Buffer> {
  const input = process.stdin;
  // Echo off first: what is typed once the prompt shows must never appear.
  input.setRawMode(true);
  process.stderr.write(prompt);
  input.resume();
  const typed = Buffer.alloc(MAX_PASSWORD_BYTES);
  let length = 0;
  return new Promise((resolve, reject) => {
    const finish = (error?: Error): void => {
      input.removeListener('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      const password = Buffer.from(typed.subarray(0, length));
      typed.fill(0);
      if (error) {
        password.fill(0);
        reject(error);
      } else resolve(password);
    };
    const onData = (chunk: Buffer): void => {
      for (const byte of chunk) {
        if (byte === 0x0d || byte === 0x0a) return finish();
        if (byte === CTRL_C || byte === CTRL_D) return finish(new PasswordInputError('no password given'));
        if (byte === BACKSPACE || byte === DELETE) length = Math.max(0, length - 1);
        else if (length < MAX_PASSWORD_BYTES) typed[length++] = byte;
        else return finish(new PasswordInputError(`password longer than ${MAX_PASSWORD_BYTES} bytes`));
      }
      chunk.fill(0);
    };
    input.on('data', onData);
  });
}

function readFirstLine(): Promise<Buffer> {
  const input = process.stdin;
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve, reject) => {
    const done = (error?: Error): void => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', onError);
      input.pause();
      const all = Buffer.concat(chunks);
      for (const chunk of chunks) chunk.fill(0);
      let end = all.indexOf(0x0a);
      if (end === -1) end = all.length;
      if (end > 0 && all[end - 1] === 0x0d) end--;
      const password = Buffer.from(all.subarray(0, end));
      all.fill(0);
      if (error) {
        password.fill(0);
        reject(error);
      } else if (password.length === 0) reject(new PasswordInputError('no password on standard input'));
      else resolve(password);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (chunk.includes(0x0a)) done();
      else if (size > MAX_PASSWORD_BYTES) done(new PasswordInputError(`password longer than ${MAX_PASSWORD_BYTES} bytes`));
    };
    const onEnd = (): void => done();
    const onError = (error: Error): void => done(error);
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', onError);
  });
}
