// The real broker for tests: scripts/kafka.sh (single-node Kafka 4 in KRaft mode, 127.0.0.1:$KAFKA_PORT).
// start() is idempotent, so CI having started it already is fine. Readers: kafkajs and kcat (independent).
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel, type IHeaders } from 'kafkajs';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = join(repoRoot, 'scripts', 'kafka.sh');
export const KAFKA_BOOTSTRAP = `127.0.0.1:${process.env['KAFKA_PORT'] ?? '19092'}`;

function kafkaSh(cmd: 'start' | 'stop'): void {
  execFileSync('bash', [script, cmd], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
}
export const startBroker = (): void => kafkaSh('start');
export const stopBroker = (): void => kafkaSh('stop');

/** Async variants: the event loop (and so the sink's sender) keeps running while the broker stops or starts. */
export async function brokerAsync(cmd: 'start' | 'stop'): Promise<void> {
  await promisify(execFile)('bash', [script, cmd], { timeout: 300_000 });
}

export function uniqueTopic(prefix: string): string {
  return `test.${prefix}.${randomUUID().slice(0, 8)}`;
}

export interface ReadMessage {
  partition: number;
  offset: number;
  key: string;
  value: string;
  headers: Record<string, string>;
}

function headersOf(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) out[k] = Array.isArray(v) ? String(v[0]) : String(v);
  return out;
}

/** Reads from the beginning with a fresh consumer group until `distinctIds` different event ids arrived. */
export async function readWithKafkajs(topic: string, distinctIds: number, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const kafka = new Kafka({ clientId: 'test-reader', brokers: [KAFKA_BOOTSTRAP], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `test-${randomUUID()}` });
  const got: ReadMessage[] = [];
  const ids = new Set<string>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolveDone, reject) => {
      const timer = setTimeout(() => reject(new Error(`kafkajs read ${ids.size}/${distinctIds} ids from ${topic} in ${timeoutMs} ms`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          const headers = headersOf(message.headers);
          got.push({ partition, offset: Number(message.offset), key: message.key?.toString() ?? '', value: message.value?.toString() ?? '', headers });
          ids.add(headers['event-id'] ?? '');
          if (ids.size >= distinctIds) {
            clearTimeout(timer);
            resolveDone();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

const execFileP = promisify(execFile);

/** Everything in the topic, read by kcat (librdkafka) to the end of every partition. */
export async function readWithKcat(topic: string): Promise<ReadMessage[]> {
  const { stdout } = await execFileP('kcat', ['-C', '-b', KAFKA_BOOTSTRAP, '-t', topic, '-o', 'beginning', '-e', '-q', '-J'], {
    maxBuffer: 256 * 1024 * 1024,
    timeout: 60_000,
  });
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = JSON.parse(l) as { partition: number; offset: number; key: string | null; payload: string | null; headers?: string[] };
      const headers: Record<string, string> = {};
      const h = m.headers ?? [];
      for (let i = 0; i + 1 < h.length; i += 2) headers[h[i]!] = h[i + 1]!;
      return { partition: m.partition, offset: m.offset, key: m.key ?? '', value: m.payload ?? '', headers };
    });
}

/** First occurrence of each event id, keeping per-partition offset order. */
export function dedupeById(messages: ReadMessage[]): { unique: ReadMessage[]; duplicates: number } {
  const seen = new Set<string>();
  const unique: ReadMessage[] = [];
  const sorted = [...messages].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const m of sorted) {
    const id = (JSON.parse(m.value) as { id: string }).id;
    if (seen.has(id)) continue;
    seen.add(id);
    unique.push(m);
  }
  return { unique, duplicates: messages.length - unique.length };
}

/** Event ids per key in partition order (a key lives in one partition, so this is the key's order). */
export function readIdsByKey(messages: ReadMessage[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  const sorted = [...messages].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  for (const msg of sorted) {
    const list = m.get(msg.key) ?? [];
    list.push((JSON.parse(msg.value) as { id: string }).id);
    m.set(msg.key, list);
  }
  return m;
}

/**
 * A second broker with authenticated listeners, apart from the shared PLAINTEXT one (scripts/kafka.sh with
 * KAFKA_SASL_PORT): SASL_PLAINTEXT on `saslPort`, SASL_SSL on `tlsPort` (self-signed cert, trust `caFile`);
 * user `cafe` / `cafe-secret` for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. Shares the jars of the first.
 */
export const SECURE_BROKER = (() => {
  const base = Number(process.env['KAFKA_SECURE_PORT'] ?? '19192');
  const dir = join(repoRoot, '.kafka', 'secure');
  return {
    env: { KAFKA_DIR: dir, KAFKA_LIB: join(repoRoot, '.kafka', 'lib'), KAFKA_PORT: String(base), KAFKA_SASL_PORT: String(base + 2) },
    plaintext: `127.0.0.1:${base}`,
    sasl: `127.0.0.1:${base + 2}`,
    tls: `127.0.0.1:${base + 3}`,
    caFile: join(dir, 'tls', 'ca.pem'),
    username: 'cafe',
    password: 'cafe-secret',
  };
})();

export async function startSecureBroker(): Promise<void> {
  // the shared broker first: it resolves the jars the second one borrows
  await brokerAsync('start');
  await promisify(execFile)('bash', [script, 'start'], { timeout: 300_000, env: { ...process.env, ...SECURE_BROKER.env } });
}

export async function stopSecureBroker(): Promise<void> {
  await promisify(execFile)('bash', [script, 'stop'], { timeout: 120_000, env: { ...process.env, ...SECURE_BROKER.env } });
}
