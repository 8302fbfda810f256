// Where the live dashboard's static files are (web/dashboard: index.html + assets/), found from this module
// whether it runs from src/ (tsx) or dist/src/ (tsc). `serve` and `watch` pass it to the HTTP server as the
// default `http.staticDir`, which serves `/` and `/assets/*` from it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function dashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'web', 'dashboard');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('web/dashboard/index.html not found next to the installed package');
}
