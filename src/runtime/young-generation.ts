/**
 * Keeps V8's young generation (the "new space" where every object starts) at its initial
 * size in every process of the daemon. By default it doubles under allocation pressure up to
 * 2 × 16 MB and keeps those pages: under load each worker's RSS grew from ~50 MB to ~70 MB,
 * about 20 MB per process of memory that only holds garbage between two scavenges. At 1 MB
 * per semi-space a scavenge runs more often but each stays as small as the few objects that
 * survive it (a request's objects die young); bench/ measures the request path with it.
 *
 * V8 reads this flag whenever the new space would grow, so setting it at run time works
 * (`--max-semi-space-size` does not: it is read once at start, and a flag on the command
 * line would not reach the packaged single executable or come through NODE_OPTIONS, which
 * is closed).
 */
import { setFlagsFromString } from 'node:v8';

/** The new space never grows past its initial size. */
const YOUNG_GENERATION_FLAG = '--semi-space-growth-factor=1';

export function keepYoungGenerationSmall(): void {
  setFlagsFromString(YOUNG_GENERATION_FLAG);
}
