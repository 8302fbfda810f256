// JSONL: one event per line, to a file (appended) or to stdout.
//
// Never a half line: each line goes to the OS in a single write call, awaited before the next, so an
// interrupted process leaves only whole lines (the file is opened O_APPEND, so even another writer's lines
// can't split ours). Nothing is held in memory: `write` resolves once the OS has the line, which passes a
// slow disk or a slow reader of stdout back to the pipeline. `close` fsyncs a file before closing it.
import { type FileHandle, open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { SinkError, errorLine } from '../errors.js';
import type { Sink, SinkStats, TimelineEvent } from '../types.js';

export interface JsonlSinkOptions {
  /** file to append to; stdout when absent. */
  path?: string;
  /** write here instead of stdout (tests, pipes). Ignored when `path` is set. */
  stream?: Writable;
}

export async function createJsonlSink(options: JsonlSinkOptions = {}): Promise<Sink> {
  if (options.path !== undefined) return fileSink(options.path);
  return streamSink(options.stream ?? process.stdout, 'jsonl:stdout');
}

async function fileSink(path: string): Promise<Sink> {
  const name = `jsonl:${path}`;
  let fh: FileHandle;
  try {
    fh = await open(path, 'a');
  } catch (err) {
    throw new SinkError(name, `cannot open ${path} for writing: ${errorLine(err)}`, { cause: err });
  }
  let sent = 0;
  let closed: Promise<void> | undefined;
  return {
    name,
    async write(event: TimelineEvent): Promise<void> {
      if (closed !== undefined) throw new SinkError(name, `write after close: ${path}`);
      const line = Buffer.from(`${JSON.stringify(event)}\n`);
      try {
        const { bytesWritten } = await fh.write(line);
        // Regular files take a whole buffer per write(2); anything else is a broken line we must report.
        if (bytesWritten !== line.length) throw new Error(`short write (${bytesWritten} of ${line.length} bytes)`);
      } catch (err) {
        throw new SinkError(name, `cannot write to ${path}: ${errorLine(err)}`, { cause: err });
      }
      sent++;
    },
    async flush(): Promise<void> {
      // Lines are with the OS as soon as write() resolves; durability comes with close().
    },
    close(): Promise<void> {
      closed ??= (async () => {
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      })();
      return closed;
    },
    stats: (): SinkStats => ({ sent, buffered: 0, dropped: 0 }),
  };
}

function streamSink(out: Writable, name: string): Sink {
  let sent = 0;
  let failure: unknown;
  const onError = (err: unknown): void => {
    failure ??= err;
  };
  out.on('error', onError);
  return {
    name,
    async write(event: TimelineEvent): Promise<void> {
      if (failure !== undefined) throw new SinkError(name, `cannot write: ${errorLine(failure)}`, { cause: failure });
      // One write() per line: the stream never sees part of a line.
      const ok = out.write(`${JSON.stringify(event)}\n`);
      sent++;
      if (!ok) await drained(out);
      if (failure !== undefined) throw new SinkError(name, `cannot write: ${errorLine(failure)}`, { cause: failure });
    },
    flush: () => (out.writableNeedDrain ? drained(out) : Promise.resolve()),
    async close(): Promise<void> {
      if (out.writableNeedDrain) await drained(out);
      out.off('error', onError);
    },
    stats: (): SinkStats => ({ sent, buffered: out.writableLength, dropped: 0 }),
  };
}

function drained(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('error', done);
    out.on('close', done);
  });
}
