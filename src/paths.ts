// Where the package lives, found from this file so the same code works from src/ (tsx) and dist/src/ (tsc).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'cafe-stream') return (root = dir);
    const up = resolve(dir, '..');
    if (up === dir) throw new Error('cafe-stream: cannot find its package.json');
    dir = up;
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Default --models: the models/ folder shipped with the package. */
export function defaultModelsDir(): string {
  return join(packageRoot(), 'models');
}
