#!/usr/bin/env node
/**
 * `saslauthd`: parse the command line, then either print (usage, version), detach and wait
 * for the daemon to listen (the default), or run the primary in the foreground (`-d`, `-f`).
 */
// First: shuts the Node runtime's own doors (inspector on SIGUSR1, NODE_OPTIONS, default
// signal actions) before any other module runs.
import '../runtime/harden-process.js';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseCommandLine } from './options.js';
import { launchDetached, startupReporter } from '../server/daemonize.js';
import { StartupError } from '../server/run-directory.js';

/**
 * The primary (every server module, the mechanism, koffi) is loaded only by the process that
 * runs it: the launcher of a detached daemon exits once the daemon listens and never needs
 * it (about 40 ms less between `saslauthd` and a listening socket). Synchronous require of
 * the ES modules, as registry.ts and debian/sea-main.cjs.
 */
const load = createRequire(import.meta.url);
const loadPrimary = (): typeof import('../server/primary.js') => load('../server/primary.js') as typeof import('../server/primary.js');
const loadLogger = (): typeof import('../log/logger.js') => load('../log/logger.js') as typeof import('../log/logger.js');

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine(argv);
  if (parsed.action === 'print') {
    process.stderr.write(parsed.text);
    return parsed.exitCode;
  }
  const { config } = parsed;
  const reporter = startupReporter();
  if (!config.foreground && !reporter) return launchDetached(fileURLToPath(import.meta.url), argv);

  const { chooseLogFormat, createLogger } = loadLogger();
  const log = createLogger({ format: chooseLogFormat(config), verbose: config.verbose });
  try {
    const daemon = await loadPrimary().startPrimary(config, log);
    reporter?.ready();
    return await daemon.exited;
  } catch (error) {
    const startup = error instanceof StartupError ? error : new StartupError([(error as Error).message], 1);
    // The launcher prints the reasons of a detached daemon; a foreground one logs them.
    if (reporter) reporter.failed(startup.exitCode, startup.lines);
    else for (const line of startup.lines) log.error(line);
    return startup.exitCode;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`saslauthd: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
