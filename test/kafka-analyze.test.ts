// End to end with the real broker: every event `analyze` writes to JSONL arrives on Kafka (same ids, same
// order per track), read back by kafkajs and by kcat; and a broker stopped mid-run and started again loses
// nothing (at-least-once: duplicates are allowed and removed by id).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/exit-codes.js';
import { kafkaKey } from '../src/sinks/kafka-sink.js';
import type { TimelineEvent } from '../src/types.js';
import { parseJsonl, runCli, startCli } from './helpers/cli.js';
import { KAFKA_BOOTSTRAP, brokerAsync, dedupeById, readIdsByKey, readWithKafkajs, readWithKcat, startBroker, uniqueTopic } from './helpers/kafka.js';
import { testModelsDir } from './helpers/models.js';
import { assertValidEvents } from './helpers/schema.js';
import { sharedPath } from './helpers/shared.js';
import { idsByKey } from './helpers/synthetic-events.js';
import { makeLoopedVideo, tempDir } from './helpers/videos.js';

const tmp = tempDir();
let models: string;
beforeAll(async () => {
  startBroker();
  models = await testModelsDir();
});
afterAll(() => tmp.cleanup());

function jsonlEvents(path: string): TimelineEvent[] {
  const events = parseJsonl(readFileSync(path, 'utf8')) as unknown as TimelineEvent[];
  assertValidEvents(events);
  return events;
}

function expectSameAsJsonl(jsonl: TimelineEvent[], read: Awaited<ReturnType<typeof readWithKcat>>): void {
  const { unique } = dedupeById(read);
  expect(new Set(unique.map((m) => (JSON.parse(m.value) as TimelineEvent).id))).toEqual(new Set(jsonl.map((e) => e.id)));
  expect(unique).toHaveLength(jsonl.length);
  const want = idsByKey(jsonl, kafkaKey);
  const got = readIdsByKey(unique);
  for (const [key, ids] of want) expect(got.get(key), `order for ${key}`).toEqual(ids);
  for (const m of unique) expect(JSON.parse(m.value)).toEqual(jsonl.find((e) => e.id === m.headers['event-id']));
}

describe('analyze → Kafka (real broker)', () => {
  it('every event written to JSONL arrives on Kafka, read by kafkajs and by kcat', async () => {
    const topic = uniqueTopic('analyze');
    const out = join(tmp.dir, 'd0.jsonl');
    const r = await runCli(
      ['analyze', sharedPath('data', 'videos', 'd0.mp4'), '--out', out, '--models', models, '--device', 'cpu', '--quiet',
        '--kafka', KAFKA_BOOTSTRAP, '--kafka-topic', topic, '--kafka-create-topic'],
      { timeoutMs: 300_000 },
    );
    expect(r.code, r.stderr).toBe(EXIT.ok);
    const jsonl = jsonlEvents(out);
    expect(jsonl.filter((e) => e.type === 'face.observation').length).toBeGreaterThan(10);
    const viaKafkajs = await readWithKafkajs(topic, jsonl.length);
    const viaKcat = await readWithKcat(topic);
    expectSameAsJsonl(jsonl, viaKafkajs);
    expectSameAsJsonl(jsonl, viaKcat);
    expect(dedupeById(viaKcat).duplicates).toBe(0);
    console.log(`analyze d0: ${jsonl.length} events in JSONL; kafkajs read ${viaKafkajs.length}, kcat read ${viaKcat.length}`);
  }, 400_000);

  it('the broker stopped mid-run and started again: the run finishes and no event is missing', async () => {
    const topic = uniqueTopic('analyze-restart');
    const out = join(tmp.dir, 'd3.jsonl');
    // d3 four times over (47 s, 1416 frames): one pass of it can end before the broker has finished stopping
    const video = await makeLoopedVideo('d3.mp4', 4, join(tmp.dir, 'd3x4.mp4'));
    const run = startCli(
      ['analyze', video, '--out', out, '--models', models, '--device', 'cpu', '--quiet',
        '--kafka', KAFKA_BOOTSTRAP, '--kafka-topic', topic, '--kafka-create-topic', '--kafka-flush-timeout', '120'],
      { timeoutMs: 400_000 },
    );
    try {
      // wait for the run to be producing, then take the broker away under it. Every frame, not a sample, and
      // the stop begins a few events in: the broker's own shutdown takes seconds, and the run must
      // still have work left once it is down.
      const t0 = Date.now();
      while (!(existsSync(out) && statSync(out).size > 4_000) && Date.now() - t0 < 200_000 && run.child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 200));
      }
      await brokerAsync('stop');
      const linesAtStop = readFileSync(out, 'utf8').split('\n').filter(Boolean).length;
      await new Promise((r) => setTimeout(r, 3000)); // the run keeps going while the broker is away
      await brokerAsync('start');
      const r = await run.done;
      expect(r.code, r.stderr).toBe(EXIT.ok);
      expect(r.stderr).toContain('kafka: send failed, buffering until the broker answers');
      const jsonl = jsonlEvents(out);
      expect(jsonl.length).toBeGreaterThan(linesAtStop); // events were produced after the stop
      const read = await readWithKcat(topic);
      expectSameAsJsonl(jsonl, read);
      console.log(`analyze d3 with a broker restart: ${jsonl.length} events in JSONL (${linesAtStop} before the stop), ` +
        `kafka holds ${read.length} (${dedupeById(read).duplicates} duplicates, removed by id)`);
    } finally {
      startBroker();
      run.child.kill('SIGKILL');
    }
  }, 600_000);
});
