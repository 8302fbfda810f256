#!/usr/bin/env node
// The `cafe-stream` command. Subcommands live in their own modules (commands.ts lists them); this file only
// builds the program, routes commander's own errors to our one-line format and exit codes, and runs it.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { commandModules } from './commands.js';
import { EXIT } from './exit-codes.js';
import { packageVersion } from './paths.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('cafe-stream')
    .description('Streaming facial expression analytics: videos and cameras in, per-face expression timelines out.')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ outputError: (str, write) => write(`cafe-stream: ${str.trimEnd()}\n`) })
    .exitOverride();
  for (const m of commandModules) m.register(program);
  // Subcommands inherit the error format and the override so a usage error anywhere exits with EXIT.usage.
  for (const c of program.commands) {
    c.configureOutput({ outputError: (str, write) => write(`cafe-stream: ${str.trimEnd()}\n`) }).exitOverride();
    c.showHelpAfterError(`(run 'cafe-stream ${c.name()} --help' for usage)`);
  }
  return program;
}

/**
 * A reader that closed our stdout (`| head`) is done, not failed: leave at once with 0, as Unix tools do on
 * SIGPIPE, before a sink turns the EPIPE into an error line and an exit code. Registered first, so it runs
 * before the other listeners. Children (ffmpeg) see their own pipe close and end too.
 */
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
  });
}

/** Parses argv (node-style: [node, script, ...args]) and runs; resolves with the exit code. */
export async function main(argv: string[] = process.argv): Promise<number> {
  exitQuietlyOnClosedStdout();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version "fail" with code 0; real usage errors already printed their line.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`cafe-stream: error: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`);
    return EXIT.internal;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  void main().then((code) => {
    process.exitCode = code;
  });
}
