// The one place tests find the read-only shared data (/work/shared on the dev machines): env CAFE_SHARED,
// defaulting to ../shared next to the repo root. A missing fixture fails loudly instead of skipping.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function sharedRoot(): string {
  return resolve(repoRoot, process.env['CAFE_SHARED'] ?? '../shared');
}

/** Absolute path of a shared file or folder; throws if it does not exist. */
export function sharedPath(...parts: string[]): string {
  const p = join(sharedRoot(), ...parts);
  if (!existsSync(p)) {
    throw new Error(`shared fixture missing: ${p} (set CAFE_SHARED to the shared data folder)`);
  }
  return p;
}
