/** The installed package's own facts, read from its package.json (dist/src/cli -> package root). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

let version: string | undefined;

export function packageVersion(): string {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(`${PACKAGE_ROOT}package.json`, 'utf8')) as { version?: unknown };
      version = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      // A broken install should still let `flash3 info` say everything else it knows.
      version = 'unknown';
    }
  }
  return version;
}
