// A worker's share of the cameras of a group: a Kafka consumer group over the compacted control topic
// (src/kafka/cameras.ts). The group's partition assignment decides which worker runs which camera; this
// class turns the records of the partitions assigned here into running streams of the LiveRunner.
//
// Offsets are never committed: on every assignment the worker reads its partitions from the beginning, which
// for a compacted topic is the current camera list (plus changes as they come). Unchanged entries read again
// leave a running camera alone; a changed entry restarts it; a tombstone stops it.
//
// Rebalances are eager (kafkajs): when one begins (REBALANCING: a worker joined, left or died) this worker
// stops every camera it runs before it rejoins (ingest killed at once, open tracks end with reason
// `reassigned`, then stream.end), so no camera is ever run by two workers at once; after the new assignment
// each worker starts the cameras of its partitions again. A camera thus pauses for one rebalance (the join,
// a fetch and an RTSP connect) whether it moves or not. A worker that dies without leaving (SIGKILL, a lost
// machine) holds its partitions until the group's session timeout expires.
import { groupConsumer } from '../kafka/client.js';
import { AssignerProtocol, type Assigner, type Consumer, type Kafka, type PartitionAssigner } from 'kafkajs';
import type { Logger } from 'pino';
import type { StreamConfig } from '../config.js';
import { errorLine } from '../errors.js';
import { parseCameraValue } from '../kafka/cameras.js';

/** What the group needs of the live runtime (LiveRunner). */
export interface CameraHost {
  start(cfg: StreamConfig): unknown;
  remove(id: string, trackEndReason?: 'reassigned'): Promise<boolean>;
  list(): { id: string; state: string; analysed: number; skipped: number; decoded: number }[];
}

export interface CameraGroupOptions {
  kafka: Kafka;
  group: string;
  topic: string;
  workerId: string;
  host: CameraHost;
  log: Logger;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
}

export interface CameraGroupState {
  workerId: string;
  group: string;
  topic: string;
  memberId: string | null;
  /** partitions of the control topic assigned here. */
  partitions: number[];
  cameras: { id: string; partition: number; state: string; fps: number; skipped: number }[];
  rebalances: number;
  /** seconds the last join took (REBALANCING → GROUP_JOIN). */
  lastRebalanceSeconds: number | null;
}

/** How long a stop waits for a camera's last events before the group goes on. */
const STOP_WAIT_MS = 5_000;

interface Running {
  partition: number;
  cfg: StreamConfig;
}

/**
 * Round robin over partitions in id order (kafkajs' own takes them in metadata order, which is not sorted):
 * `putCamera` fills partitions 0, 1, 2, … first, so dealing them in order spreads cameras evenly over workers.
 */
export const cameraAssigner: PartitionAssigner = ({ cluster }): Assigner => ({
  name: 'CafeStreamCameraAssigner',
  version: 0,
  async assign({ members, topics }) {
    const sorted = members.map((m) => m.memberId).sort();
    const assignment = new Map<string, Record<string, number[]>>(sorted.map((m) => [m, {}]));
    let i = 0;
    for (const topic of [...topics].sort()) {
      const ids = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b);
      for (const id of ids) {
        const member = assignment.get(sorted[i++ % sorted.length]!)!;
        (member[topic] ??= []).push(id);
      }
    }
    return [...assignment].map(([memberId, a]) => ({ memberId, memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: a, userData: Buffer.alloc(0) }) }));
  },
  protocol({ topics }) {
    return { name: 'CafeStreamCameraAssigner', metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
  },
});

export class CameraGroup {
  readonly #o: CameraGroupOptions;
  readonly #consumer: Consumer;
  #assigned = new Set<number>();
  readonly #running = new Map<string, Running>();
  /** camera starts and stops, one at a time, in the order decided. */
  #ops: Promise<void> = Promise.resolve();
  #memberId: string | null = null;
  #rebalances = 0;
  #rebalanceStarted: number | undefined;
  #lastRebalanceSeconds: number | null = null;
  #closed = false;
  /** bumped when a rebalance begins: a change decided before it must not start a camera after it. */
  #generation = 0;
  #fpsSample = new Map<string, { at: number; analysed: number; fps: number }>();
  /** the latest entry per camera of the partitions assigned here (what should run). */
  readonly #desired = new Map<string, Running>();
  /** removals not finished yet: the same camera cannot start again here until its old stream is gone. */
  readonly #removing = new Map<string, Promise<unknown>>();

  constructor(o: CameraGroupOptions) {
    this.#o = o;
    this.#consumer = groupConsumer(o.kafka, o.group, o, { partitionAssigners: [cameraAssigner] });
  }

  async start(): Promise<void> {
    const c = this.#consumer;
    c.on(c.events.REBALANCING, () => {
      this.#rebalanceStarted = Date.now();
      this.#o.log.info({ cameras: [...this.#running.keys()] }, 'group: rebalancing, handing every camera back');
      this.#assigned = new Set();
      this.#desired.clear();
      this.#generation++;
      // at once, not behind queued changes: the ingest must be dead before the new owner connects
      const stopped = this.#stopAll();
      this.#enqueue(() => stopped);
    });
    c.on(c.events.GROUP_JOIN, (e) => {
      const partitions = [...(e.payload.memberAssignment[this.#o.topic] ?? [])].sort((a, b) => a - b);
      this.#memberId = e.payload.memberId;
      this.#rebalances++;
      if (this.#rebalanceStarted !== undefined) this.#lastRebalanceSeconds = (Date.now() - this.#rebalanceStarted) / 1000;
      this.#rebalanceStarted = undefined;
      this.#assigned = new Set(partitions);
      for (const [id, d] of [...this.#desired]) if (!this.#assigned.has(d.partition)) this.#desired.delete(id);
      this.#o.log.info({ partitions, memberId: e.payload.memberId, leader: e.payload.isLeader, durationMs: e.payload.duration }, 'group: joined');
      // kafkajs keeps its read position for a partition it still holds after a rejoin; the camera list is the
      // whole partition, so read each one from the start again (an unchanged entry leaves its camera alone)
      for (const partition of partitions) this.#consumer.seek({ topic: this.#o.topic, partition, offset: '0' });
      // a rebalance this worker missed (its session had expired): drop what is no longer ours
      this.#enqueue(async () => {
        for (const [id, r] of [...this.#running]) if (!this.#assigned.has(r.partition)) await this.#stop(id);
      });
    });
    c.on(c.events.CRASH, (e) => {
      this.#o.log.error({ err: errorLine(e.payload.error), restart: e.payload.restart }, 'group: consumer crashed');
      if (!e.payload.restart) this.#enqueue(() => this.#stopAll());
    });
    await c.connect();
    await c.subscribe({ topic: this.#o.topic, fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const id = message.key?.toString() ?? '';
        if (id === '' || !this.#assigned.has(partition)) return;
        let cfg: StreamConfig | null;
        try {
          cfg = parseCameraValue(id, message.value);
        } catch (err) {
          this.#o.log.error({ camera: id, partition, offset: message.offset, err: errorLine(err) }, 'group: bad camera record skipped');
          return;
        }
        this.#enqueue(() => this.#apply(partition, id, cfg));
      },
    });
  }

  /** Stops every camera here (ingest first), then leaves the group so the others take them at once. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#generation++;
    const stopped = this.#stopAll(); // every ingest is dead before the group hears that we leave
    await this.#consumer.disconnect().catch((err: unknown) => this.#o.log.warn({ err: errorLine(err) }, 'group: disconnect failed'));
    await stopped;
    await this.#ops;
    await Promise.all(this.#removing.values());
  }

  state(): CameraGroupState {
    const views = new Map(this.#o.host.list().map((v) => [v.id, v]));
    const now = Date.now();
    const cameras = [...this.#running].map(([id, r]) => {
      const v = views.get(id);
      const analysed = v?.analysed ?? 0;
      // analysed frames per second since the previous look (at least 1 s apart)
      const prev = this.#fpsSample.get(id);
      let fps = prev?.fps ?? 0;
      if (prev === undefined || now - prev.at >= 1000) {
        if (prev !== undefined) fps = Math.round(((analysed - prev.analysed) / ((now - prev.at) / 1000)) * 100) / 100;
        this.#fpsSample.set(id, { at: now, analysed, fps });
      }
      return { id, partition: r.partition, state: v?.state ?? 'unknown', fps, skipped: v?.skipped ?? 0 };
    });
    return {
      workerId: this.#o.workerId,
      group: this.#o.group,
      topic: this.#o.topic,
      memberId: this.#memberId,
      partitions: [...this.#assigned].sort((a, b) => a - b),
      cameras: cameras.sort((a, b) => a.id.localeCompare(b.id)),
      rebalances: this.#rebalances,
      lastRebalanceSeconds: this.#lastRebalanceSeconds,
    };
  }

  #enqueue(op: () => Promise<void>): void {
    this.#ops = this.#ops.then(op).catch((err: unknown) => this.#o.log.error({ err: errorLine(err) }, 'group: camera change failed'));
  }

  async #apply(partition: number, id: string, cfg: StreamConfig | null): Promise<void> {
    if (this.#closed || !this.#assigned.has(partition)) return;
    const generation = this.#generation;
    if (cfg === null) this.#desired.delete(id);
    else this.#desired.set(id, { partition, cfg });
    const cur = this.#running.get(id);
    if (cfg === null) {
      if (cur !== undefined) await this.#stop(id);
      return;
    }
    if (cur !== undefined && JSON.stringify(cur.cfg) === JSON.stringify(cfg)) return;
    if (cur !== undefined) await this.#stop(id);
    if (this.#closed || generation !== this.#generation || !this.#assigned.has(partition)) return;
    if (this.#removing.has(id)) return; // starts once the old stream is gone (#stop)
    this.#o.host.start(cfg);
    this.#running.set(id, { partition, cfg });
    this.#o.log.info({ camera: id, partition }, 'group: camera started');
  }

  /**
   * Kills the camera's ingest at once (inside host.remove, before its first await) and waits a bounded time
   * for its last events; a slower drain goes on in the background, and the camera may start here again only
   * after it.
   */
  async #stop(id: string): Promise<void> {
    this.#running.delete(id);
    this.#fpsSample.delete(id);
    const removal = this.#o.host.remove(id, 'reassigned').catch((err: unknown) => this.#o.log.error({ camera: id, err: errorLine(err) }, 'group: camera stop failed'));
    this.#removing.set(id, removal);
    void removal.finally(() => {
      if (this.#removing.get(id) !== removal) return;
      this.#removing.delete(id);
      this.#o.log.info({ camera: id }, 'group: camera stopped');
      // it may have come back to this worker meanwhile
      const d = this.#desired.get(id);
      if (d !== undefined && !this.#running.has(id)) this.#enqueue(() => this.#apply(d.partition, id, d.cfg));
    });
    let timer: NodeJS.Timeout | undefined;
    const slow = await Promise.race([removal.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_WAIT_MS)))]);
    clearTimeout(timer);
    if (slow) this.#o.log.warn({ camera: id, waitedMs: STOP_WAIT_MS }, 'group: camera still draining; going on without it');
  }

  async #stopAll(): Promise<void> {
    // every ingest is killed before any drain is awaited
    await Promise.all([...this.#running.keys()].map((id) => this.#stop(id)));
  }
}
