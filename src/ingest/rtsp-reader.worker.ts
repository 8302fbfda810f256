// The ffmpeg side of a live RTSP source, on its own thread.
//
// Why a worker: raw RGB frames cross a 64–200 KB pipe/socket buffer, so reading one 512×512 frame (768 KB)
// takes a dozen event-loop turns. On the main thread those turns wait behind face detection and inference;
// measured here, a busy main thread read 25 fps streams at 2 fps, ffmpeg blocked on its pipe, and the backlog
// moved into TCP and the camera, where "newest frame wins" cannot reach it and latency grows without bound.
// This thread only reads: it drains ffmpeg at the camera's pace, keeps the newest complete frame, drops (and
// counts) older ones, and hands a frame over (zero-copy transfer) only when the main thread asks for one.
//
// Protocol (messages, both ways) is in rtsp-reader-protocol.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { parentPort } from 'node:worker_threads';
import { parseStderrLine, type FromReader, type ToReader } from './rtsp-reader-protocol.js';

const port = parentPort;
if (port === null) throw new Error('rtsp-reader.worker must run as a worker thread');

let proc: ChildProcess | undefined;
let frameBytes = 0;
let inOutput = false;
let inputFps: number | undefined;
let frame: Buffer | undefined;
let filled = 0;
let latest: { data: Buffer; at: number } | undefined;
let credit = 0;
let dropped = 0;
let early: Buffer[] = [];
let killTimer: ReturnType<typeof setTimeout> | undefined;

const post = (msg: FromReader, transfer?: ArrayBuffer[]): void => port.postMessage(msg, transfer ?? []);

function pump(): void {
  if (credit <= 0 || latest === undefined) return;
  const { data, at } = latest;
  latest = undefined;
  credit--;
  // data owns its whole ArrayBuffer (allocated with Buffer.alloc below), so the transfer moves exactly one frame
  const ab = data.buffer as ArrayBuffer;
  post({ type: 'frame', data: ab, at, dropped }, [ab]);
  dropped = 0;
}

function onBytes(chunk: Buffer): void {
  if (frameBytes === 0) {
    early.push(chunk);
    return;
  }
  let off = 0;
  while (off < chunk.length) {
    // not allocUnsafe: pooled slices could share an ArrayBuffer, which a transfer would detach for both
    frame ??= Buffer.alloc(frameBytes);
    const n = Math.min(chunk.length - off, frameBytes - filled);
    chunk.copy(frame, filled, off, off + n);
    filled += n;
    off += n;
    if (filled === frameBytes) {
      if (latest !== undefined) dropped++;
      latest = { data: frame, at: Date.now() / 1000 };
      frame = undefined;
      filled = 0;
      pump();
    }
  }
}

function start(ffmpegPath: string, args: string[]): void {
  frameBytes = 0;
  inOutput = false;
  inputFps = undefined;
  frame = undefined;
  filled = 0;
  latest = undefined;
  dropped = 0;
  early = [];
  const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc = child;
  child.once('spawn', () => post({ type: 'pid', pid: child.pid! }));
  child.once('error', (err) => post({ type: 'stderr', line: `spawn failed: ${err.message}` }));
  child.stdout?.on('data', onBytes);
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    const lines = (partial + text).split(/\r\n|\r|\n/);
    partial = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.trim();
      if (line === '') continue;
      post({ type: 'stderr', line });
      const parsed = parseStderrLine(line, inOutput);
      if (parsed.output) inOutput = true;
      if (parsed.inputFps !== undefined) inputFps = parsed.inputFps;
      if (parsed.size !== undefined && frameBytes === 0) {
        frameBytes = parsed.size.width * parsed.size.height * 3;
        post({ type: 'size', width: parsed.size.width, height: parsed.size.height, ...(inputFps === undefined ? {} : { fps: inputFps }) });
        const held = early;
        early = [];
        for (const c of held) onBytes(c);
      }
    }
  });
  child.once('close', (code, signal) => {
    if (killTimer !== undefined) clearTimeout(killTimer);
    killTimer = undefined;
    if (proc === child) proc = undefined;
    post({ type: 'exit', code, signal, partialBytes: filled });
  });
}

function stop(graceMs: number): void {
  const child = proc;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  // one SIGTERM does not stop ffmpeg blocked in an RTSP read: SIGKILL after the grace period
  child.kill('SIGTERM');
  killTimer ??= setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, graceMs);
}

port.on('message', (msg: ToReader) => {
  switch (msg.type) {
    case 'start':
      start(msg.ffmpegPath, msg.args);
      break;
    case 'credit':
      credit += msg.n;
      pump();
      break;
    case 'stop':
      stop(msg.graceMs);
      break;
  }
});
