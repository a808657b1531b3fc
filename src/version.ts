/** saslauthd-ts's own version, from package.json (installed beside dist/ by the package too). */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  try {
    const manifest = new URL('../../package.json', import.meta.url);
    return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
