#!/usr/bin/env node
// Launcher: runs the compiled CLI (dist/, written by `npm run build`). From a source checkout without a build,
// it says so instead of failing with a module-not-found trace.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(`cafe-stream: error: not built yet: run \`npm run build\` in ${root} (or use \`npm run cli -- <args>\`)\n`);
  process.exit(1);
}
// scripts/setup-gpu.sh puts the CUDA libraries in .gpu/lib. The loader reads LD_LIBRARY_PATH only when a process
// starts, so when it lacks that folder the CLI runs again in a child that has it.
const gpuLib = join(root, '.gpu', 'lib');
const libPath = process.env.LD_LIBRARY_PATH ?? '';
if (existsSync(gpuLib) && !libPath.split(':').includes(gpuLib)) {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, LD_LIBRARY_PATH: libPath ? `${gpuLib}:${libPath}` : gpuLib },
  });
  // Ctrl-C reaches the child through the terminal's process group, so SIGINT is not sent to it a second time.
  const forward = { SIGINT: () => {}, SIGTERM: () => child.kill('SIGTERM'), SIGHUP: () => child.kill('SIGHUP') };
  for (const [sig, fn] of Object.entries(forward)) process.on(sig, fn);
  child.on('exit', (code, signal) => {
    for (const [sig, fn] of Object.entries(forward)) process.off(sig, fn);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
} else {
  const { main } = await import(pathToFileURL(entry).href);
  process.exitCode = await main(process.argv);
}
