// Every subcommand of the CLI, one module each. A module exports `register(program)`; add new ones here.
import type { Command } from 'commander';
import * as analyze from './analyze.js';
import * as cluster from './cluster.js';
import * as evaluate from './evaluate.js';
import * as live from './live.js';
import * as subscribe from './subscribe.js';

export interface CommandModule {
  register(program: Command): void;
}

export const commandModules: CommandModule[] = [analyze, evaluate, live, subscribe, cluster];
