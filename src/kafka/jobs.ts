// The jobs topic of a worker group: one record per file to analyse (`cafe-stream submit`), key = job id, value
// = the job as JSON. Workers share it as a consumer group and commit a job's offset only once its events and
// its job.done are delivered, so a job a worker dies in is redone by another (docs/cluster.md).
import { randomUUID } from 'node:crypto';
import { basename, resolve } from 'node:path';
import type { Kafka } from 'kafkajs';
import { z } from 'zod';
import { ConfigError, SinkError, errorLine } from '../errors.js';

export const DEFAULT_JOBS_TOPIC = 'cafe-stream.jobs';
export const DEFAULT_JOB_PARTITIONS = 6;

export const jobSchema = z
  .object({
    jobId: z.string().min(1),
    /** a path every worker can read (a shared volume), absolute. */
    file: z.string().min(1),
    /** stream id of the job's events (default: the file's name, as `analyze` names it). */
    streamId: z.string().min(1),
    sampleFps: z.number().positive().max(120).optional(),
    submittedAt: z.string().min(1),
  })
  .strict();

export type Job = z.infer<typeof jobSchema>;

export function newJob(file: string, opts: { sampleFps?: number; streamId?: string } = {}): Job {
  return {
    jobId: randomUUID(),
    file: resolve(file),
    streamId: opts.streamId ?? basename(file),
    ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }),
    submittedAt: new Date().toISOString(),
  };
}

export function parseJob(value: Buffer | string | null): Job {
  if (value === null) throw new ConfigError('job', 'empty job record');
  let obj: unknown;
  try {
    obj = JSON.parse(value.toString());
  } catch (err) {
    throw new ConfigError('job', `job record is not JSON: ${errorLine(err)}`);
  }
  const r = jobSchema.safeParse(obj);
  if (!r.success) throw new ConfigError('job', `bad job record: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export async function ensureJobsTopic(kafka: Kafka, topic: string, partitions = DEFAULT_JOB_PARTITIONS): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    if ((await admin.listTopics()).includes(topic)) return;
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions, replicationFactor: -1 }] });
  } catch (err) {
    throw new SinkError('kafka', `could not create the jobs topic ${topic}: ${errorLine(err)}`, { cause: err });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Writes the jobs, each to the partition that has held the fewest jobs so far: a partition is worked by one
 * worker, one job at a time, so jobs hashed by their random ids would pile up on some workers while others
 * idle.
 */
export async function submitJobs(kafka: Kafka, topic: string, jobs: Job[]): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const load = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(BigInt(o.high) - BigInt(o.low))]));
    const messages = jobs.map((j) => {
      const partition = [...load].sort((a, b) => a[1] - b[1] || a[0] - b[0])[0]?.[0];
      if (partition !== undefined) load.set(partition, load.get(partition)! + 1);
      return { key: j.jobId, value: JSON.stringify(j), ...(partition === undefined ? {} : { partition }) };
    });
    await producer.connect();
    await producer.send({ topic, acks: -1, messages });
  } catch (err) {
    throw new SinkError('kafka', `could not submit jobs to ${topic}: ${errorLine(err)}`, { cause: err });
  } finally {
    await admin.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
  }
}
