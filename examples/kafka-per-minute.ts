// A Kafka consumer that counts a stream's expressions per minute (the smoothed label of every face observation).
//
//   npx tsx examples/kafka-per-minute.ts 127.0.0.1:9092 [topic] [--from-beginning] [--streams n]
//
// Prints one JSON line per stream and minute once that minute is over (the stream's time moved past it, or the
// stream ended): {"streamId":"lobby","minute":"2026-12-02T10:15","counts":{"neutral":812,"happiness":95}}.
// Minutes are wall-clock for cameras and media time (minute 0, 1, …) for files. With --streams n it exits after
// n streams ended; otherwise it runs until Ctrl-C.
import { type Expression, fromKafka } from 'cafe-stream';

const args = process.argv.slice(2);
const brokers = args[0];
if (brokers === undefined) {
  console.error('usage: kafka-per-minute.ts <host:port> [topic] [--from-beginning] [--streams n]');
  process.exit(2);
}
const topic = args[1] !== undefined && !args[1].startsWith('--') ? args[1] : 'cafe-stream.events';
const streamsArg = args.indexOf('--streams');
const endAfter = streamsArg >= 0 ? Number(args[streamsArg + 1]) : Infinity;

const stop = new AbortController();
process.once('SIGINT', () => stop.abort());

/** per stream: the minute being counted and its counts. */
const open = new Map<string, { minute: number; wall: boolean; counts: Partial<Record<Expression, number>> }>();
const label = (minute: number, wall: boolean): string => (wall ? new Date(minute * 60_000).toISOString().slice(0, 16) : String(minute));
const emit = (streamId: string): void => {
  const m = open.get(streamId);
  if (m !== undefined) console.log(JSON.stringify({ streamId, minute: label(m.minute, m.wall), counts: m.counts }));
};

let ended = 0;
for await (const e of fromKafka({ brokers: [brokers], topic, fromBeginning: args.includes('--from-beginning'), signal: stop.signal })) {
  if (e.type === 'face.observation') {
    const wall = e.time > 1e8; // Unix seconds (live) vs media seconds (files)
    const minute = Math.floor(e.time / 60);
    const m = open.get(e.streamId);
    if (m !== undefined && m.minute !== minute) emit(e.streamId);
    if (m === undefined || m.minute !== minute) open.set(e.streamId, { minute, wall, counts: {} });
    const counts = open.get(e.streamId)!.counts;
    counts[e.label] = (counts[e.label] ?? 0) + 1;
  } else if (e.type === 'stream.end') {
    emit(e.streamId);
    open.delete(e.streamId);
    if (++ended >= endAfter) stop.abort();
  }
}
