// A worker's share of the file jobs of its group (src/kafka/jobs.ts): a consumer group over the jobs topic,
// joined through GroupMember (sticky assignment, restarts after a crash).
//
// A job never blocks the group. eachMessage only pauses the job's partition and starts the file in the
// background, so the consumer keeps heartbeating and rejoining while the file runs (issue 20: a worker busy
// in eachMessage missed a rebalance, was dropped from the group and its job ran twice). One job at a time: a
// record that arrives while a job runs is put back (its partition paused, seeked back to it) until the job
// ends.
//
// A job's events go to the events sink through a gate that drops everything once the job is aborted, so the
// abort's own track.end/stream.end never reach Kafka: every event that does is one a complete run would write
// at the same position with the same id (ids are derived from job id, stream id and position), and a redo by
// another worker only repeats them. A job is aborted when its partition leaves this worker (a new assignment
// without it, or a freeze past the session timeout: src/kafka/group-member.ts) and at shutdown.
//
// Exactly one job.done per job: when the file is done and every event acknowledged, the worker first commits
// the job's own offset, which the broker accepts only from a member of the current generation (so it still
// holds the partition), then writes job.done, then commits the offset past the job. A worker that loses the
// partition before the first commit writes nothing; the new holder redoes the job. Only a worker killed in the
// milliseconds between job.done and the second commit leaves a job that is redone and gets a second job.done,
// with the same id.
import { GroupMember, within, type GroupMembership } from '../kafka/group-member.js';
import type { Kafka, KafkaMessage, Producer } from 'kafkajs';
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
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
}

export interface JobRunnerState {
  jobsDone: number;
  jobsFailed: number;
  /** jobs given up mid-file because their partition left this worker (another worker redoes them). */
  jobsAborted: number;
  current: { jobId: string; file: string; since: string; partition: number } | null;
  membership: GroupMembership;
}

interface ActiveJob {
  job: Job;
  partition: number;
  offset: string;
  abort: AbortController;
  since: string;
  why?: string;
  /** the offset past the job is committed: it will not be read again. */
  finished?: boolean;
}

/** How long a job whose events could not be delivered waits before it is tried again. */
const RETRY_MS = 2_000;

/** Passes events on until the job is aborted; after that they are dropped, never delivered. */
function gatedSink(inner: Sink, signal: AbortSignal): Sink {
  return {
    name: inner.name,
    write: async (e) => {
      if (!signal.aborted) await inner.write(e);
    },
    flush: () => inner.flush(),
    close: async () => undefined,
    stats: () => inner.stats(),
  };
}

export class JobRunner {
  readonly #o: JobRunnerOptions;
  readonly #member: GroupMember;
  readonly #producer: Producer;
  #done = 0;
  #failed = 0;
  #aborted = 0;
  #active: ActiveJob | undefined;
  #assigned = new Set<number>();
  /** partitions paused because a job was running when their record came. */
  readonly #waiting = new Set<number>();
  /** a rebalance is under way: no commit or job.done until the new assignment says who holds what. */
  #settled: Promise<void> = Promise.resolve();
  #settle: (() => void) | undefined;
  #closing = false;
  #running: Promise<void> = Promise.resolve();

  constructor(o: JobRunnerOptions) {
    this.#o = o;
    this.#producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    this.#member = new GroupMember({
      kafka: o.kafka,
      groupId: o.group,
      topic: o.topic,
      workerId: o.workerId,
      log: o.log,
      sessionTimeoutMs: o.sessionTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      held: () => Object.fromEntries([...this.#assigned].map((p) => [p, 1])),
      eachMessage: async (partition, message) => this.#onRecord(partition, message),
      onRebalancing: () => {
        if (this.#settle === undefined) this.#settled = new Promise((r) => (this.#settle = r));
      },
      onAssigned: async (a) => {
        this.#assigned = new Set(a.partitions);
        const active = this.#active;
        if (active !== undefined && !this.#assigned.has(active.partition)) this.#abortActive(`partition ${active.partition} moved to another worker`);
        // kafkajs forgets pauses when it restarts a consumer: what must wait is paused again
        if (this.#active !== undefined && this.#assigned.has(this.#active.partition)) this.#pause(this.#active.partition);
        for (const p of [...this.#waiting]) {
          if (!this.#assigned.has(p)) this.#waiting.delete(p);
          else if (this.#active !== undefined) this.#pause(p);
        }
        if (this.#active === undefined) this.#resumeWaiting();
        this.#settle?.();
        this.#settle = undefined;
      },
      onFrozen: () => {
        if (this.#active !== undefined) this.#abortActive('this process was frozen past the session timeout');
      },
    });
  }

  async start(): Promise<void> {
    await this.#producer.connect();
    await this.#member.start();
  }

  /** Aborts the running job (not committed: another worker redoes it), then leaves the group. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#active !== undefined) this.#abortActive('shutting down');
    await this.#running;
    await this.#member.close();
    await within(this.#producer.disconnect(), 2_000).catch(() => undefined);
  }

  state(): JobRunnerState {
    const a = this.#active;
    return {
      jobsDone: this.#done,
      jobsFailed: this.#failed,
      jobsAborted: this.#aborted,
      current: a === undefined || a.abort.signal.aborted ? null : { jobId: a.job.jobId, file: a.job.file, since: a.since, partition: a.partition },
      membership: this.#member.state(),
    };
  }

  #pause(partition: number): void {
    try {
      this.#member.consumer?.pause([{ topic: this.#o.topic, partitions: [partition] }]);
    } catch {
      // no consumer group right now (restarting): the next assignment pauses it again
    }
  }

  #resume(partition: number): void {
    try {
      this.#member.consumer?.resume([{ topic: this.#o.topic, partitions: [partition] }]);
    } catch {
      // as above
    }
  }

  #resumeWaiting(): void {
    for (const p of this.#waiting) this.#resume(p);
    this.#waiting.clear();
  }

  #abortActive(why: string): void {
    const a = this.#active;
    if (a === undefined || a.abort.signal.aborted) return;
    a.why = why;
    a.abort.abort();
    this.#o.log.warn({ job: a.job.jobId, file: a.job.file, why }, 'jobs: job aborted; its events stop here and the next holder of its partition redoes it');
  }

  async #commit(partition: number, offset: string): Promise<void> {
    const c = this.#member.consumer;
    if (c === undefined) throw new SinkError('kafka', 'no consumer to commit with');
    await c.commitOffsets([{ topic: this.#o.topic, partition, offset }]);
  }

  async #onRecord(partition: number, message: KafkaMessage): Promise<void> {
    const next = (BigInt(message.offset) + 1n).toString();
    let job: Job;
    try {
      job = parseJob(message.value);
    } catch (err) {
      this.#o.log.error({ partition, offset: message.offset, err: errorLine(err) }, 'jobs: bad job record skipped');
      await this.#commit(partition, next).catch(() => undefined);
      return;
    }
    if (this.#active !== undefined || this.#closing) {
      // one job at a time: this record waits, read again from here when the running job ends
      this.#pause(partition);
      this.#member.consumer?.seek({ topic: this.#o.topic, partition, offset: message.offset });
      this.#waiting.add(partition);
      return;
    }
    this.#pause(partition);
    const active: ActiveJob = { job, partition, offset: message.offset, abort: new AbortController(), since: new Date().toISOString() };
    this.#active = active;
    this.#running = this.#run(active)
      .catch((err: unknown) => this.#o.log.error({ job: job.jobId, err: errorLine(err) }, 'jobs: job failed to finish'))
      .finally(() => {
        if (this.#active === active) this.#active = undefined;
        // not finished but still here (aborted by a freeze, undeliverable events): read it again
        if (!active.finished && this.#assigned.has(partition) && !this.#closing) this.#member.consumer?.seek({ topic: this.#o.topic, partition, offset: active.offset });
        if (this.#assigned.has(partition)) this.#resume(partition);
        this.#resumeWaiting();
      });
  }

  async #run(a: ActiveJob): Promise<void> {
    const { job } = a;
    const log = this.#o.log.child({ job: job.jobId, file: job.file });
    log.info({ partition: a.partition, offset: a.offset }, 'jobs: started');
    const ids = deterministicIds(job.jobId);
    let events = 0;
    let lastTime = 0;
    let frames = 0;
    let tracks = 0;
    let error: unknown;
    try {
      const source = createFileSource({ path: job.file, streamId: job.streamId, reuseBuffers: true, ...(job.sampleFps === undefined ? {} : { sampleFps: job.sampleFps }) });
      const summary = await runPipeline({
        detector: this.#o.detector,
        model: this.#o.model,
        sinks: [gatedSink(this.#o.sink, a.abort.signal)],
        sources: [source],
        eventIds: ids,
        signal: a.abort.signal,
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
      if (err instanceof SinkError && !a.abort.signal.aborted) {
        // events that could not be delivered: not committed, the job is tried again from its start
        log.error({ err: errorLine(err), retryInMs: RETRY_MS }, 'jobs: events not delivered; the job will run again');
        await new Promise((r) => setTimeout(r, RETRY_MS));
        return;
      }
      error = err;
    }
    if (a.abort.signal.aborted) {
      // nothing to confirm: no flush either (at shutdown with the broker away it would wait out its timeout)
      if (!this.#closing) this.#aborted++;
      return;
    }
    await this.#o.sink.flush();
    // who holds the partition is known only between rebalances
    await this.#settled;
    if (a.abort.signal.aborted || !this.#assigned.has(a.partition)) {
      this.#aborted++;
      return;
    }
    try {
      await this.#commit(a.partition, a.offset); // the broker's word that this member still holds the partition
    } catch (err) {
      this.#aborted++;
      log.warn({ err: errorLine(err) }, 'jobs: the group no longer confirms this worker holds the job; no job.done (its next holder redoes it)');
      return;
    }
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
    const next = (BigInt(a.offset) + 1n).toString();
    a.finished = true;
    await this.#commit(a.partition, next).catch(async (err: unknown) => {
      // a rebalance in between: commit under the next assignment if the partition is still here
      log.warn({ err: errorLine(err) }, 'jobs: commit after job.done failed; retrying after the rebalance');
      await this.#settled;
      if (this.#assigned.has(a.partition)) await this.#commit(a.partition, next);
    });
    if (error === undefined) this.#done++;
    else this.#failed++;
    log.info({ status: done.status, events, frames, ...(error === undefined ? {} : { err: errorLine(error) }) }, 'jobs: done');
  }
}
