// `cafe-stream subscribe`: read the events another cafe-stream process publishes, from Kafka or from its
// WebSocket sink (through the library's readers, fromKafka / fromWebSocket), and print them as a live timeline
// (one line per event) or as JSONL (--json).
// Kafka delivery is at-least-once, so events are de-duplicated by id here (bounded memory). The WebSocket
// client reconnects with `since` = the last event id it printed, so a dropped connection leaves no gap
// while the server's ring still holds that id. The Kafka reader also closes the tracks a lost worker left open
// (track.end reason `worker-lost`, src/api/spells.ts). SIGINT/SIGTERM: disconnect and exit 0.
import { Option, type Command } from 'commander';
import { fromKafka, fromWebSocket } from '../api/readers.js';
import { ConfigError, errorLine } from '../errors.js';
import { DEFAULT_KAFKA_TOPIC } from '../sinks/kafka-sink.js';
import type { TimelineEvent, TimelineEventType } from '../types.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { positiveInteger } from './arg-parsers.js';

export interface SubscribeOptions {
  kafka?: string[];
  topic: string;
  group?: string;
  fromBeginning?: boolean;
  ws?: string;
  token?: string;
  since?: string;
  stream: string[];
  track: string[];
  type: string[];
  json?: boolean;
  maxEvents?: number;
}

export interface SubscribeIo {
  out: (line: string) => void;
  err: (line: string) => void;
  signal: AbortSignal;
}

const TYPES: TimelineEventType[] = ['stream.start', 'stream.online', 'stream.offline', 'track.start', 'face.observation', 'face.segment', 'track.end', 'stream.end'];

function collect(v: string, prev: string[]): string[] {
  return [...prev, ...v.split(',').filter((s) => s !== '')];
}

export function register(program: Command): void {
  program
    .command('subscribe')
    .description('print the events a running cafe-stream publishes on Kafka or WebSocket, as a live timeline or JSONL')
    .addOption(new Option('--kafka <brokers>', 'read from Kafka: bootstrap host:port[,host:port…]').conflicts('ws').argParser((v) => v.split(',')))
    .option('--topic <topic>', 'Kafka topic', DEFAULT_KAFKA_TOPIC)
    .option('--group <id>', 'Kafka consumer group (default: a fresh one, so every subscriber sees everything)')
    .option('--from-beginning', 'Kafka: start at the oldest retained event instead of new ones')
    .addOption(new Option('--ws <url>', 'read from a WebSocket sink, e.g. ws://127.0.0.1:8765/').conflicts('kafka'))
    .addOption(new Option('--token <token>', 'WebSocket shared token').env('CAFE_STREAM_WS_TOKEN'))
    .option('--since <event-id>', 'WebSocket: resume after this event id (from the server\'s recent-event ring)')
    .option('--stream <id>', 'only this stream (repeat or comma-separate for several)', collect, [])
    .option('--track <id>', 'only this track: t3 or stream/t3 (repeatable)', collect, [])
    .option('--type <type>', `only these event types (repeatable): ${TYPES.join(', ')}`, collect, [])
    .option('--json', 'print events as JSONL instead of the human-readable timeline')
    .option('--max-events <n>', 'exit after printing n events', positiveInteger)
    .addHelpText(
      'after',
      `
Examples:
  cafe-stream subscribe --kafka 127.0.0.1:19092 --from-beginning
  cafe-stream subscribe --kafka 127.0.0.1:19092 --topic cafe-stream.events --stream lobby --json
  cafe-stream subscribe --ws ws://127.0.0.1:8765/ --type face.segment --type track.end`,
    )
    .action(async (opts: SubscribeOptions) => {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // `| head` closes stdout early: that is the reader being done, not an error
      process.stdout.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' ? ac.abort() : undefined));
      try {
        process.exitCode = await subscribe(opts, {
          out: (l) => void process.stdout.write(`${l}\n`),
          err: (l) => void process.stderr.write(`cafe-stream: ${l}\n`),
          signal: ac.signal,
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}

/** Runs until the signal aborts, --max-events is reached, or a connection fails for good; returns the exit code. */
export async function subscribe(opts: SubscribeOptions, io: SubscribeIo): Promise<number> {
  try {
    if ((opts.kafka === undefined) === (opts.ws === undefined)) throw new ConfigError('subscribe', 'give exactly one of --kafka or --ws');
    for (const t of opts.type) if (!(TYPES as string[]).includes(t)) throw new ConfigError('type', `unknown event type ${JSON.stringify(t)} (one of ${TYPES.join(', ')})`);
    const printer = new Printer(opts, io);
    const signal = AbortSignal.any([io.signal, printer.done]);
    const log = (line: string): void => {
      if (!signal.aborted) io.err(line);
    };
    // the library's readers (src/api/readers.ts): typed, schema-checked, de-duplicated, paced by this loop
    const events =
      opts.kafka !== undefined
        ? fromKafka({
            brokers: opts.kafka,
            topic: opts.topic,
            ...(opts.group === undefined ? {} : { groupId: opts.group }),
            fromBeginning: opts.fromBeginning === true,
            signal,
            log: (l) => log(`${l} (Ctrl-C to stop)`),
            onInvalid: (err) => log(`skipping a message that is not an event: ${err.message}`),
          })
        : fromWebSocket(opts.ws!, {
            ...(opts.token === undefined ? {} : { token: opts.token }),
            ...(opts.since === undefined ? {} : { since: opts.since }),
            streams: opts.stream,
            tracks: opts.track,
            types: opts.type as TimelineEventType[],
            signal,
            log,
            onInvalid: (err) => log(`skipping a message that is not an event: ${err.message}`),
            onDropped: (n) => log(`the server dropped ${n} events for this client (it was reading too slowly)`),
          });
    for await (const e of events) {
      if (e.type !== 'job.done') printer.print(e);
      if (printer.done.aborted) break;
    }
    return EXIT.ok;
  } catch (err) {
    io.err(`error: ${errorLine(err)}`);
    return exitCodeFor(err);
  }
}

/** Filters, de-duplicates by id (the last `dedupeWindow` ids), prints, counts toward --max-events. */
class Printer {
  readonly #seen = new Set<string>();
  readonly #dedupeWindow = 100_000;
  #printed = 0;
  readonly #done: AbortController = new AbortController();
  constructor(
    private readonly opts: SubscribeOptions,
    private readonly io: SubscribeIo,
  ) {}

  get done(): AbortSignal {
    return this.#done.signal;
  }

  wants(e: TimelineEvent): boolean {
    const o = this.opts;
    if (o.stream.length > 0 && !o.stream.includes(e.streamId)) return false;
    if (o.type.length > 0 && !o.type.includes(e.type)) return false;
    if (o.track.length > 0 && !('trackId' in e && (o.track.includes(e.trackId) || o.track.includes(`${e.streamId}/${e.trackId}`)))) return false;
    return true;
  }

  /** false if it was a duplicate or filtered out. */
  print(e: TimelineEvent): boolean {
    if (this.#done.signal.aborted || this.#seen.has(e.id) || !this.wants(e)) return false;
    this.#seen.add(e.id);
    if (this.#seen.size > this.#dedupeWindow) this.#seen.delete(this.#seen.values().next().value!);
    this.io.out(this.opts.json ? JSON.stringify(e) : formatEvent(e));
    this.#printed++;
    if (this.opts.maxEvents !== undefined && this.#printed >= this.opts.maxEvents) this.#done.abort();
    return true;
  }
}

function fmtTime(t: number): string {
  if (t > 1e8) return new Date(t * 1000).toISOString().slice(11, 23); // wall clock (live): UTC hh:mm:ss.mmm
  const m = Math.floor(t / 60);
  return `${String(m).padStart(2, '0')}:${(t - m * 60).toFixed(2).padStart(5, '0')}`; // media time: mm:ss.ss
}

/** One line: time, stream, track, type, then what matters for that type. */
export function formatEvent(e: TimelineEvent): string {
  const track = 'trackId' in e ? e.trackId : '-';
  const head = `${fmtTime(e.time)}  ${e.streamId}  ${track.padEnd(4)}  ${e.type.padEnd(16)}`;
  switch (e.type) {
    case 'stream.start':
      return `${head}  ${e.stream.source} ${e.stream.width}x${e.stream.height}${e.stream.fps ? ` @ ${e.stream.fps} fps` : ''}`;
    case 'stream.online':
      return `${head}  attempt ${e.attempt}`;
    case 'stream.offline':
      return `${head}  ${e.reason}; retry in ${e.retryIn.toFixed(1)} s`;
    case 'track.start':
      return `${head}  box ${Math.round(e.box.width)}x${Math.round(e.box.height)} at ${Math.round(e.box.x)},${Math.round(e.box.y)}`;
    case 'face.observation':
      return `${head}  ${e.label} ${e.confidence.toFixed(2)}`;
    case 'face.segment':
      return `${head}  ${e.label} ${fmtTime(e.start)}–${fmtTime(e.end)} (${e.observations} obs)`;
    case 'track.end':
      return `${head}  ${e.summary.dominant} dominant, ${e.summary.duration.toFixed(1)} s, ${e.summary.segments} segments`;
    case 'stream.end':
      return `${head}  ${e.reason}, ${e.frames} frames, ${e.tracks} tracks${e.error ? `: ${e.error}` : ''}`;
  }
}
