// Test helpers for live streams: the local GStreamer RTSP server (scripts/rtsp-server.py) as a child process
// that a test can kill, restart on the same port and hang; free ports; and a /proc scan for leaked ffmpeg.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const RTSP_SERVER_SCRIPT = join(repoRoot, 'scripts', 'rtsp-server.py');

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export class RtspTestServer {
  readonly port: number;
  readonly mounts: Record<string, string>;
  #proc: ChildProcess | undefined;
  stderr = '';

  constructor(port: number, mounts: Record<string, string>) {
    this.port = port;
    this.mounts = mounts;
  }

  url(mount: string): string {
    return `rtsp://127.0.0.1:${this.port}/${mount.replace(/^\//, '')}`;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Starts the server and resolves once it prints "ready" (the first start transcodes each file once). */
  async start(extraArgs: string[] = []): Promise<void> {
    if (this.#proc !== undefined) throw new Error('rtsp test server already running');
    const args = [RTSP_SERVER_SCRIPT, '--port', String(this.port), ...extraArgs];
    for (const [name, file] of Object.entries(this.mounts)) args.push('--mount', `/${name.replace(/^\//, '')}=${file}`);
    const proc = spawn('/usr/bin/python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc = proc;
    proc.stderr?.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    await new Promise<void>((res, rej) => {
      let out = '';
      const timer = setTimeout(() => rej(new Error(`rtsp server not ready in 60 s: ${this.stderr}`)), 60_000);
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready ')) {
          clearTimeout(timer);
          res();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`rtsp server exited (${code}) during start: ${this.stderr}`));
      });
    });
  }

  /** The "camera server killed" case: SIGKILL, no goodbye to clients. */
  async kill(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((res) => {
      proc.once('exit', () => res());
      proc.kill('SIGKILL');
    });
  }

  /** Stop sending media, keep every connection open (SIGUSR1); `resume` undoes it (SIGUSR2). */
  hang(): void {
    this.#proc?.kill('SIGUSR1');
  }

  resume(): void {
    this.#proc?.kill('SIGUSR2');
  }
}

/** ffmpeg processes whose parent is `ppid` (default: this process), from /proc. */
export function ffmpegChildren(ppid: number = process.pid): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ..." — comm may contain spaces, so split after the last ')'
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      const state = fields[0];
      if (comm === 'ffmpeg' && Number(fields[1]) === ppid && state !== 'Z') found.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return found;
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs: number, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
