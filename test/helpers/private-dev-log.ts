/**
 * Runs a command with a private /dev/log (root only): inside a private mount namespace
 * (unshare -m) /dev is replaced by a tmpfs holding the usual device nodes (bind-mounted from
 * the real /dev) and a /dev/log symlink to a test's datagram socket. Nothing changes on the
 * machine: a syslog daemon, if any, never sees the test's lines, and the test sees exactly
 * what glibc's syslog() sends.
 */
/**
 * Shell lines that replace /dev with a tmpfs holding the usual device nodes, bind-mounted
 * from the real /dev (first bind-mounted at "$realdev", which the caller sets), and the
 * /proc/self/fd links. For use inside a private mount namespace only.
 */
export const PRIVATE_DEV_SH = `
mkdir -p "$realdev"
mount --bind /dev "$realdev"
mount -t tmpfs -o mode=0755 tmpfs /dev
for node in null zero full random urandom tty console; do
  if [ -e "$realdev/$node" ]; then touch "/dev/$node"; mount --bind "$realdev/$node" "/dev/$node"; fi
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mkdir /dev/shm /dev/pts
`;

const SETUP = `
set -e
realdev="$SASLAUTHD_TEST_SCRATCH/realdev"
${PRIVATE_DEV_SH}
ln -s "$SASLAUTHD_TEST_LOG" /dev/log
unset SASLAUTHD_TEST_SCRATCH SASLAUTHD_TEST_LOG
exec "$@"
`;

/**
 * The command prefix (for spawn: [command, ...args], then the real command) and the
 * environment variables it needs: `logSocket` becomes /dev/log, `scratch` is an empty
 * directory the namespace may use.
 */
export function privateDevLog(logSocket: string, scratch: string): { prefix: string[]; env: Record<string, string> } {
  return {
    prefix: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', SETUP, 'private-dev-log'],
    env: { SASLAUTHD_TEST_SCRATCH: scratch, SASLAUTHD_TEST_LOG: logSocket },
  };
}
