// A worker's share of the file jobs of its group (src/kafka/jobs.ts): a Kafka consumer group over the jobs
// topic. One job at a time: the file runs through its own pipeline on the worker's detector and model, its
// events go to the events sink (which blocks rather than drops), the sink is flushed (every event acked),
// job.done is written, and only then is the job's offset committed. A worker that dies mid-file never
// commits, so the group gives the job to another worker, which redoes it from the start; the event ids depend
// only on (job id, stream id, position), so the redone events carry the same ids and consumers de-duplicate.
import { groupConsumer } from '../kafka/client.js';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { SinkError, errorLine } from '../errors.js';
import { createFileSource } from '../ingest/file-source.js';
import { parseJob, type Job } from '../kafka/jobs.js';
import { deterministicIds, eventBase } from '../pipeline/events.js';
import type { PipelineOptionsInput } from '../pipeline/options.js';
import type { DetectorPort, ExpressionModelPort } from '../pipeline/ports.js';
import { runPipeline } from '../pipeline/run.js';
import { toKafkaMessage } from '../sinks/kafka-sink.js';
import type { JobDoneEvent, Sink, TimelineEvent } from '../types.js';

export interface JobRunnerOptions {
  kafka: Kafka;
  group: string;
  topic: string;
  eventsTopic: string;
  workerId: string;
  detector: DetectorPort;
  model: ExpressionModelPort;
  /** the events sink: must block rather than drop, and flush() must mean every event is acknowledged. */
  sink: Sink;
  options?: PipelineOptionsInput;
  log: Logger;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
}

export interface JobRunnerState {
  jobsDone: number;
  jobsFailed: number;
  current: { jobId: string; file: string; since: string } | null;
}

export class JobRunner {
  readonly #o: JobRunnerOptions;
  readonly #consumer: Consumer;
  readonly #producer: Producer;
  #done = 0;
  #failed = 0;
  #current: JobRunnerState['current'] = null;
  #abort = new AbortController();

  constructor(o: JobRunnerOptions) {
    this.#o = o;
    this.#consumer = groupConsumer(o.kafka, o.group, o);
    this.#producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  }

  async start(): Promise<void> {
    await this.#producer.connect();
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.#o.topic, fromBeginning: true });
    await this.#consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message, heartbeat }) => {
        const next = (BigInt(message.offset) + 1n).toString();
        let job: Job;
        try {
          job = parseJob(message.value);
        } catch (err) {
          this.#o.log.error({ partition, offset: message.offset, err: errorLine(err) }, 'jobs: bad job record skipped');
          await this.#consumer.commitOffsets([{ topic, partition, offset: next }]);
          return;
        }
        // kafkajs heartbeats only between messages: a long file must keep the session alive itself
        const beat = setInterval(() => void heartbeat().catch(() => undefined), this.#o.heartbeatIntervalMs ?? 1_000);
        try {
          await this.#run(job);
        } finally {
          clearInterval(beat);
        }
        if (this.#abort.signal.aborted) return; // shutting down mid-job: not committed, another worker redoes it
        await this.#consumer.commitOffsets([{ topic, partition, offset: next }]);
      },
    });
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#consumer.disconnect().catch(() => undefined);
    await this.#producer.disconnect().catch(() => undefined);
  }

  state(): JobRunnerState {
    return { jobsDone: this.#done, jobsFailed: this.#failed, current: this.#current };
  }

  async #run(job: Job): Promise<void> {
    const log = this.#o.log.child({ job: job.jobId, file: job.file });
    this.#current = { jobId: job.jobId, file: job.file, since: new Date().toISOString() };
    log.info('jobs: started');
    const ids = deterministicIds(job.jobId);
    let events = 0;
    let lastTime = 0;
    let frames = 0;
    let tracks = 0;
    let error: unknown;
    try {
      const source = createFileSource({ path: job.file, streamId: job.streamId, ...(job.sampleFps === undefined ? {} : { sampleFps: job.sampleFps }) });
      const summary = await runPipeline({
        detector: this.#o.detector,
        model: this.#o.model,
        sinks: [this.#o.sink],
        sources: [source],
        eventIds: ids,
        signal: this.#abort.signal,
        ...(this.#o.options === undefined ? {} : { options: this.#o.options }),
        onEvent: (e: TimelineEvent) => {
          events++;
          lastTime = e.time;
        },
      });
      const s = summary.streams[0];
      frames = s?.frames ?? 0;
      tracks = s?.tracks ?? 0;
      if (s?.reason === 'error') error = s.error;
    } catch (err) {
      // events that cannot be delivered must not be committed: the job stays for a retry or another worker
      if (err instanceof SinkError) throw err;
      error = err;
    }
    await this.#o.sink.flush();
    this.#current = null;
    if (this.#abort.signal.aborted) return;
    // the id continues the job's own sequence, so a redone job's job.done has the same id too
    const done: JobDoneEvent = {
      type: 'job.done',
      ...eventBase(job.streamId, lastTime, ids(`${job.streamId}\u0000job.done`)()),
      jobId: job.jobId,
      file: job.file,
      status: error === undefined ? 'ok' : 'error',
      frames,
      tracks,
      events,
      worker: this.#o.workerId,
      ...(error === undefined ? {} : { error: errorLine(error) }),
    };
    const msg = toKafkaMessage(done as unknown as TimelineEvent, { worker: this.#o.workerId, 'job-id': job.jobId });
    await this.#producer.send({ topic: this.#o.eventsTopic, acks: -1, messages: [msg] });
    if (error === undefined) this.#done++;
    else this.#failed++;
    log.info({ status: done.status, events, frames, ...(error === undefined ? {} : { err: errorLine(error) }) }, 'jobs: done');
  }
}
