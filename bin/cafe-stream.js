#!/usr/bin/env node
// Launcher: runs the compiled CLI (dist/, written by `npm run build`). From a source checkout without a build,
// it says so instead of failing with a module-not-found trace.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(`cafe-stream: error: not built yet: run \`npm run build\` in ${root} (or use \`npm run cli -- <args>\`)\n`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv);
