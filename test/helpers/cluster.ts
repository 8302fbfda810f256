// Worker-group test helpers: `cafe-stream worker` child processes and a live reader of the events topic that
// keeps each event with the `worker` header of the message that carried it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import type { TimelineEvent } from '../../src/types.js';
import { KAFKA_BOOTSTRAP } from './kafka.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface WorkerProc {
  id: string;
  httpPort: number;
  child: ChildProcess;
  stderr: () => string;
}

export function startWorker(id: string, httpPort: number, args: string[], env: NodeJS.ProcessEnv = {}): WorkerProc {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--id', id, '--http', `127.0.0.1:${httpPort}`, ...args], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-200_000)));
  return { id, httpPort, child, stderr: () => err };
}

export interface WorkerHealth {
  streams: { id: string; state: string }[];
  worker?: { workerId: string; partitions: number[]; cameras: { id: string; state: string; fps: number }[]; rebalances: number };
}

export async function workerHealth(w: WorkerProc): Promise<WorkerHealth | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${w.httpPort}/healthz`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as WorkerHealth;
  } catch {
    return undefined;
  }
}

export interface SeenEvent {
  worker: string;
  event: TimelineEvent;
  /** Date.now() when the test read it. */
  readAt: number;
}

/** Reads the topic from the beginning for as long as it runs. */
export class EventTap {
  readonly seen: SeenEvent[] = [];
  #consumer: Consumer;

  constructor(readonly topic: string) {
    const kafka = new Kafka({ clientId: 'test-tap', brokers: [KAFKA_BOOTSTRAP], logLevel: logLevel.NOTHING });
    this.#consumer = kafka.consumer({ groupId: `test-tap-${randomUUID()}`, maxWaitTimeInMs: 200 });
  }

  async start(): Promise<void> {
    const admin = new Kafka({ clientId: 'test-tap', brokers: [KAFKA_BOOTSTRAP], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: this.topic, numPartitions: 3 }], waitForLeaders: true });
    await admin.disconnect();
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.#consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value === null) return;
        const worker = message.headers?.['worker']?.toString() ?? '';
        this.seen.push({ worker, event: JSON.parse(message.value.toString()) as TimelineEvent, readAt: Date.now() });
      },
    });
  }

  async stop(): Promise<void> {
    await this.#consumer.disconnect();
  }
}
