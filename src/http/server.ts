// The HTTP side of `serve`, on node:http (a handful of routes needs no framework):
//   GET    /healthz            per-stream state (200 while the process runs; "status" says ok/degraded; a worker outside its group: 503 "unhealthy")
//   GET    /metrics            Prometheus text (src/http/metrics.ts)
//   GET    /streams            the streams and their figures
//   POST   /streams            add a stream: JSON body = one `streams` entry of the config
//   DELETE /streams/:id        stop and remove a stream
//   GET    /, /assets/*        static files from `staticDir` (the dashboard), when configured
// The WebSocket sink attaches to the same http.Server (upgrade on its own path, e.g. /ws).
// Binds 127.0.0.1 by default: the control routes have no auth, so exposing them is a deliberate choice.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, errorLine } from '../errors.js';
import type { LiveMetrics } from './metrics.js';

export interface StreamView {
  id: string;
  /** credentials stripped. */
  url: string;
  state: 'connecting' | 'online' | 'offline' | 'stopped' | 'disabled';
  /** why it is offline, when it is. */
  reason?: string;
  lastFrameAgeSeconds: number | null;
  reconnects: number;
  decoded: number;
  analysed: number;
  skipped: number;
  faces: number;
}

export interface StreamControl {
  list(): StreamView[];
  /** validates `body` (ConfigError on a bad key); rejects with a ConfigError if the id exists. */
  add(body: unknown): Promise<StreamView>;
  /** false when there is no such stream. */
  remove(id: string): Promise<boolean>;
}

export interface LiveHttpOptions {
  metrics: LiveMetrics;
  streams: StreamControl;
  log: Logger;
  /** allow POST/DELETE /streams. */
  control?: boolean;
  staticDir?: string;
  /** largest accepted request body, bytes. */
  maxBody?: number;
  /** more fields for /healthz (a worker's group state). */
  health?: () => Record<string, unknown>;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `body over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
}

export class LiveHttpServer {
  readonly server: Server;
  readonly #o: LiveHttpOptions;
  readonly #staticRoot: string | undefined;

  constructor(opts: LiveHttpOptions) {
    this.#o = opts;
    this.#staticRoot = opts.staticDir === undefined ? undefined : resolve(opts.staticDir);
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : err instanceof ConfigError ? 400 : 500;
        if (status === 500) opts.log.error({ err, url: req.url }, 'http handler failed');
        const extra = err instanceof HttpError ? err.extra : err instanceof ConfigError ? { key: err.key, code: err.code } : {};
        if (!res.headersSent) sendJson(res, status, { error: errorLine(err), ...extra });
        else res.destroy();
      });
    });
    // keep-alive sockets must not hold shutdown up
    this.server.keepAliveTimeout = 2000;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((res, rej) => {
      this.server.once('error', rej);
      this.server.listen(port, host, () => {
        this.server.off('error', rej);
        res();
      });
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((res) => this.server.close(() => res()));
    this.server.closeIdleConnections();
    const t = setTimeout(() => this.server.closeAllConnections(), 1000);
    await closed;
    clearTimeout(t);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (path === '/healthz' && (method === 'GET' || method === 'HEAD')) {
      const streams = this.#o.streams.list();
      const enabled = streams.filter((s) => s.state !== 'disabled');
      const ok = enabled.every((s) => s.state === 'online');
      const extra = this.#o.health?.() ?? {};
      // 503 only when the process itself says it is out of service (a worker outside its group): probes restart it
      sendJson(res, extra['status'] === 'unhealthy' ? 503 : 200, { status: ok ? 'ok' : 'degraded', uptimeSeconds: Math.round(process.uptime()), streams, ...extra });
      return;
    }
    if (path === '/metrics' && method === 'GET') {
      const text = await this.#o.metrics.text();
      res.writeHead(200, { 'content-type': this.#o.metrics.registry.contentType });
      res.end(text);
      return;
    }
    if (path === '/streams' && method === 'GET') {
      sendJson(res, 200, this.#o.streams.list());
      return;
    }
    if (path === '/streams' && method === 'POST') {
      this.#requireControl();
      const body = await readJson(req, this.#o.maxBody ?? 64 * 1024);
      try {
        const view = await this.#o.streams.add(body);
        this.#o.log.info({ stream: view.id }, 'stream added over HTTP');
        sendJson(res, 201, view);
      } catch (err) {
        // an id that exists is a conflict, not a malformed request
        if (err instanceof ConfigError && err.key === 'id' && /already/.test(err.message)) throw new HttpError(409, err.message, { key: 'id' });
        throw err;
      }
      return;
    }
    const m = /^\/streams\/([^/]+)$/.exec(path);
    if (m !== null && method === 'DELETE') {
      this.#requireControl();
      const id = decodeURIComponent(m[1]!);
      if (!(await this.#o.streams.remove(id))) throw new HttpError(404, `no stream "${id}"`);
      this.#o.log.info({ stream: id }, 'stream removed over HTTP');
      res.writeHead(204).end();
      return;
    }
    if ((path === '/' || path.startsWith('/assets/')) && (method === 'GET' || method === 'HEAD')) {
      await this.#serveStatic(path === '/' ? '/index.html' : path, req, res);
      return;
    }
    throw new HttpError(404, `no route ${method} ${path}`);
  }

  #requireControl(): void {
    if (this.#o.control === false) throw new HttpError(403, 'stream control over HTTP is off (http.control: false)');
  }

  /** The dashboard hook: files under staticDir only, never outside it. */
  async #serveStatic(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const root = this.#staticRoot;
    if (root === undefined) throw new HttpError(404, 'no static files configured (http.staticDir)');
    const file = normalize(join(root, decodeURIComponent(path)));
    if (!file.startsWith(root + sep)) throw new HttpError(404, 'not found');
    const st = await stat(file).catch(() => undefined);
    if (st === undefined || !st.isFile()) throw new HttpError(404, 'not found');
    res.writeHead(200, {
      'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': st.size,
      'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(file).pipe(res);
  }
}
