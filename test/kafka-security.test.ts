// Kafka security against a real broker (scripts/kafka.sh with its SASL listeners): SASL PLAIN, SCRAM-SHA-256
// and SCRAM-SHA-512 over plaintext, SCRAM over TLS (a keytool-made broker certificate), for the events sink
// in code and for the CLI (`subscribe`) through the CAFE_STREAM_KAFKA_* environment; wrong credentials and an
// untrusted certificate fail with the cause named.
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { kafkaClientSecurity, kafkaSecurityFromEnv, type KafkaSecurity } from '../src/kafka/security.js';
import { createKafkaSink } from '../src/sinks/kafka-sink.js';
import { runCli, startCli } from './helpers/cli.js';
import { testModelsDir } from './helpers/models.js';
import { freePort } from './helpers/rtsp.js';
import { sharedPath } from './helpers/shared.js';
import { SECURE_BROKER as B, startSecureBroker, stopSecureBroker, uniqueTopic } from './helpers/kafka.js';
import { syntheticEvents } from './helpers/synthetic-events.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function readAll(brokers: string, security: KafkaSecurity, topic: string, want: number): Promise<string[]> {
  const kafka = new Kafka({ clientId: 'test', brokers: [brokers], logLevel: logLevel.NOTHING, ...kafkaClientSecurity(security) });
  const consumer = kafka.consumer({ groupId: `test-${randomUUID()}` });
  const ids: string[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${ids.length}/${want}`)), 30_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          ids.push((JSON.parse(message.value!.toString()) as { id: string }).id);
          if (ids.length >= want) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return ids;
}

describe('Kafka TLS and SASL', () => {
  beforeAll(async () => {
    await startSecureBroker();
  }, 300_000);
  // a second idle JVM would cost the shared 2-core machine CPU for the rest of the run
  afterAll(async () => {
    await stopSecureBroker();
  }, 120_000);

  const cases: [string, string, KafkaSecurity][] = [
    ['SASL PLAIN', B.sasl, { sasl: { mechanism: 'plain', username: B.username, password: B.password } }],
    ['SASL SCRAM-SHA-256', B.sasl, { sasl: { mechanism: 'scram-sha-256', username: B.username, password: B.password } }],
    ['TLS + SASL SCRAM-SHA-512', B.tls, { tls: { caFile: B.caFile, insecure: false }, sasl: { mechanism: 'scram-sha-512', username: B.username, password: B.password } }],
  ];
  for (const [name, brokers, security] of cases) {
    it(`the events sink delivers over ${name}`, async () => {
      const topic = uniqueTopic('secure');
      const sink = await createKafkaSink({ brokers: [brokers], topic, createTopic: true, partitions: 1, security, log: quiet });
      const events = syntheticEvents({ streams: 1, tracksPerStream: 2, observationsPerTrack: 3 });
      for (const e of events) await sink.write(e);
      await sink.close();
      expect(sink.stats().sent).toBe(events.length);
      const ids = await readAll(brokers, security, topic, events.length);
      expect(new Set(ids)).toEqual(new Set(events.map((e) => e.id)));
    });
  }

  it('subscribe reads over TLS + SCRAM-SHA-512 configured from the environment only', async () => {
    const topic = uniqueTopic('secure-env');
    const security: KafkaSecurity = { tls: { caFile: B.caFile, insecure: false }, sasl: { mechanism: 'scram-sha-512', username: B.username, password: B.password } };
    const sink = await createKafkaSink({ brokers: [B.tls], topic, createTopic: true, partitions: 1, security, log: quiet });
    const events = syntheticEvents({ streams: 1, tracksPerStream: 1, observationsPerTrack: 2 });
    for (const e of events) await sink.write(e);
    await sink.close();
    const env = {
      CAFE_STREAM_KAFKA_TLS_CA: B.caFile,
      CAFE_STREAM_KAFKA_SASL_MECHANISM: 'scram-sha-512',
      CAFE_STREAM_KAFKA_SASL_USERNAME: B.username,
      CAFE_STREAM_KAFKA_SASL_PASSWORD: B.password,
    };
    const r = await runCli(['subscribe', '--kafka', B.tls, '--topic', topic, '--from-beginning', '--json', '--max-events', String(events.length)], { env, timeoutMs: 60_000 });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const got = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id);
    expect(new Set(got)).toEqual(new Set(events.map((e) => e.id)));

    // the same with a wrong password: a non-zero exit naming the authentication failure
    const bad = await runCli(['subscribe', '--kafka', B.tls, '--topic', topic, '--from-beginning', '--json'], {
      env: { ...env, CAFE_STREAM_KAFKA_SASL_PASSWORD: 'wrong' },
      timeoutMs: 60_000,
    });
    expect(bad.code).toBe(8);
    expect(bad.stderr).toMatch(/authentication failed/i);
  });

  it('cameras, submit and a worker of a group work over TLS + SCRAM-SHA-256 from the environment', async () => {
    const env = {
      CAFE_STREAM_KAFKA_TLS_CA: B.caFile,
      CAFE_STREAM_KAFKA_SASL_MECHANISM: 'scram-sha-256',
      CAFE_STREAM_KAFKA_SASL_USERNAME: B.username,
      CAFE_STREAM_KAFKA_SASL_PASSWORD: B.password,
    };
    const cams = uniqueTopic('secure-cams');
    const common = ['--kafka', B.tls, '--cameras-topic', cams];
    const add = await runCli(['cameras', 'add', 'door', 'rtsp://user:pw@127.0.0.1:1/door', '--sample-fps', '2', ...common], { env, timeoutMs: 60_000 });
    expect(add.stderr).toBe('');
    expect(add.stdout).toMatch(/^door: added \(partition 0\)$/m);
    const ls = await runCli(['cameras', 'ls', '--json', ...common], { env, timeoutMs: 60_000 });
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout.trim())).toMatchObject({ id: 'door', partition: 0, config: { url: 'rtsp://127.0.0.1:1/door', sampleFps: 2 } }); // credentials never printed
    const file = sharedPath('data', 'videos', 'd0.mp4');
    const submit = await runCli(['submit', file, '--kafka', B.tls, '--jobs-topic', uniqueTopic('secure-jobs'), '--json'], { env, timeoutMs: 60_000 });
    expect(submit.code).toBe(0);
    expect(JSON.parse(submit.stdout.trim())).toMatchObject({ file, streamId: 'd0.mp4' });
    // the same without credentials: refused, with the cause
    const anon = await runCli(['cameras', 'ls', ...common], { env: { CAFE_STREAM_KAFKA_TLS_CA: B.caFile }, timeoutMs: 60_000 });
    expect(anon.code).not.toBe(0);
    // a worker joins the group over TLS + SCRAM and takes the camera (it cannot connect to it: offline)
    const port = await freePort();
    const worker = startCli(['worker', '--kafka', B.tls, '--group', `secure-${cams.slice(-8)}`, '--cameras-topic', cams, '--events-topic', uniqueTopic('secure-ev'), '--no-jobs', '--models', await testModelsDir(), '--http', `127.0.0.1:${port}`, '--session-timeout', '6'], { env, timeoutMs: 120_000 });
    try {
      const deadline = Date.now() + 90_000;
      let cameras: { id: string }[] = [];
      while (Date.now() < deadline && cameras.length === 0) {
        await new Promise((r) => setTimeout(r, 1000));
        const h = (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.json()).catch(() => undefined)) as { worker?: { cameras: { id: string }[] } } | undefined;
        cameras = h?.worker?.cameras ?? [];
      }
      expect(cameras.map((c) => c.id)).toEqual(['door']);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.done;
    }
  });

  it('a broker certificate that is not trusted is refused; without SASL the SASL port refuses', async () => {
    const kafka = new Kafka({ clientId: 't', brokers: [B.tls], logLevel: logLevel.NOTHING, retry: { retries: 0 }, ...kafkaClientSecurity({ tls: { insecure: false }, sasl: { mechanism: 'plain', username: B.username, password: B.password } }) });
    const admin = kafka.admin();
    await expect(admin.connect()).rejects.toThrow(/certificate/i);
    await admin.disconnect();
    const plain = new Kafka({ clientId: 't', brokers: [B.sasl], logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 2_000, requestTimeout: 3_000 });
    const a2 = plain.admin();
    await expect(a2.connect().then(() => a2.listTopics())).rejects.toThrow();
    await a2.disconnect();
  });

  it('reads the environment strictly: a bad mechanism or a missing password names the variable', () => {
    expect(() => kafkaSecurityFromEnv({ CAFE_STREAM_KAFKA_SASL_MECHANISM: 'gssapi', CAFE_STREAM_KAFKA_SASL_USERNAME: 'u', CAFE_STREAM_KAFKA_SASL_PASSWORD: 'p' })).toThrow(
      /CAFE_STREAM_KAFKA_SASL_MECHANISM must be one of plain, scram-sha-256, scram-sha-512/,
    );
    expect(() => kafkaSecurityFromEnv({ CAFE_STREAM_KAFKA_SASL_MECHANISM: 'plain', CAFE_STREAM_KAFKA_SASL_USERNAME: 'u' })).toThrow(ConfigError);
    expect(() => kafkaSecurityFromEnv({ CAFE_STREAM_KAFKA_TLS_CAFILE: 'x' })).toThrow(/unknown variable CAFE_STREAM_KAFKA_TLS_CAFILE/);
    expect(() => kafkaClientSecurity({ tls: { caFile: '/nonexistent/ca.pem', insecure: false } })).toThrow(/cannot read the Kafka TLS CA file \/nonexistent\/ca.pem/);
    expect(kafkaSecurityFromEnv({})).toEqual({});
  });
});
