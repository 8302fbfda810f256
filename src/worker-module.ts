// Starting a worker thread from one of our modules, whether it runs compiled (dist/*.js) or from the .ts
// sources (tsx, vitest): there a worker has no loader for .ts, so it first registers tsx's, through its API.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** Starts `./<name>.js` (or `.ts`) next to the module whose `import.meta.url` is `caller`. */
export function startWorker(caller: string, name: string, options: WorkerOptions = {}): Worker {
  if (caller.endsWith('.ts')) {
    const tsx = pathToFileURL(createRequire(caller).resolve('tsx/esm/api')).href;
    const entry = new URL(`./${name}.ts`, caller).href;
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    return new Worker(code, { ...options, eval: true });
  }
  return new Worker(new URL(`./${name}.js`, caller), options);
}
