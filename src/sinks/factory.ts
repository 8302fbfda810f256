// Sink options on the CLI and the sinks they make. Each sink adds its flags in registerSinkOptions and
// builds itself in sinksFromOptions; commands that emit events (analyze, watch) call both.
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Sink } from '../types.js';
import { createJsonlSink } from './jsonl-sink.js';
import { DEFAULT_KAFKA_TOPIC, createKafkaSink, type OverflowPolicy } from './kafka-sink.js';
import { lineLog } from './sink-log.js';
import { createWsSink } from './ws-sink.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function brokerList(v: string): string[] {
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const b of list) if (!/^[^\s:/]+:\d{1,5}$/.test(b)) throw new InvalidArgumentError(`want host:port[,host:port…], got ${JSON.stringify(b)}`);
  if (list.length === 0) throw new InvalidArgumentError('want host:port');
  return list;
}

/** "8765" → 127.0.0.1:8765 (loopback unless a host is given), "0.0.0.0:8765" → every interface. */
export function wsAddress(v: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(v.trim());
  const port = Number(m?.[2]);
  if (m === null || port > 65535) throw new InvalidArgumentError(`want [host:]port, got ${JSON.stringify(v)}`);
  return { host: m[1] || '127.0.0.1', port };
}

export function registerSinkOptions(cmd: Command): Command {
  return cmd
    .option('-o, --out <file>', 'append events as JSONL to this file (default: JSONL on stdout)')
    .option('--kafka <brokers>', 'also send events to Kafka: bootstrap host:port[,host:port…] (docs/sinks.md)', brokerList)
    .option('--kafka-topic <topic>', 'Kafka topic for every event', DEFAULT_KAFKA_TOPIC)
    .option('--kafka-create-topic', 'create the topic at start if missing (else the broker auto-creates it or an admin does)')
    .option('--kafka-partitions <n>', 'partitions for a topic that --kafka-create-topic creates', positiveInt, 3)
    .option('--kafka-buffer <n>', 'events held while the broker is down or slow', positiveInt, 10_000)
    .addOption(
      new Option('--kafka-overflow <policy>', 'when the buffer is full: drop-oldest (counted and logged) or block (pause the analysis)')
        .choices(['drop-oldest', 'block'])
        .default('drop-oldest'),
    )
    .option('--kafka-flush-timeout <s>', 'at exit, wait this long for buffered events to reach the broker', positiveInt, 30)
    .option('--ws <[host:]port>', 'serve events to WebSocket clients (127.0.0.1 unless a host is given)', wsAddress)
    .addOption(new Option('--ws-token <token>', 'shared token WebSocket clients must send (?token= or Authorization: Bearer)').env('CAFE_STREAM_WS_TOKEN'))
    .option('--ws-queue <n>', 'events queued per slow WebSocket client before the oldest are dropped', positiveInt, 1000)
    .option('--ws-ring <n>', 'recent events kept so reconnecting clients resume with `since`', positiveInt, 10_000);
}

export async function sinksFromOptions(opts: Record<string, unknown>): Promise<Sink[]> {
  const out = opts['out'];
  const sinks: Sink[] = [];
  try {
    sinks.push(await createJsonlSink(typeof out === 'string' ? { path: out } : {}));
    const brokers = opts['kafka'] as string[] | undefined;
    if (brokers !== undefined) {
      sinks.push(
        await createKafkaSink({
          brokers,
          topic: opts['kafkaTopic'] as string,
          createTopic: opts['kafkaCreateTopic'] === true,
          partitions: opts['kafkaPartitions'] as number,
          bufferSize: opts['kafkaBuffer'] as number,
          overflow: opts['kafkaOverflow'] as OverflowPolicy,
          flushTimeoutMs: (opts['kafkaFlushTimeout'] as number) * 1000,
          log: lineLog(),
        }),
      );
    }
    const ws = opts['ws'] as { host: string; port: number } | undefined;
    if (ws !== undefined) {
      const token = opts['wsToken'] as string | undefined;
      sinks.push(
        await createWsSink({
          host: ws.host,
          port: ws.port,
          clientQueue: opts['wsQueue'] as number,
          ringSize: opts['wsRing'] as number,
          ...(token === undefined ? {} : { token }),
          log: lineLog(),
        }),
      );
    }
  } catch (err) {
    // a later sink failed to start: do not leave the earlier ones open
    for (const s of sinks) await s.close().catch(() => undefined);
    throw err;
  }
  return sinks;
}
