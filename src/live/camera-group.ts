// A worker's share of the cameras of a group: a Kafka consumer group over the compacted control topic
// (src/kafka/cameras.ts), joined through GroupMember with the sticky assigner. The group's assignment decides
// which worker runs which camera; this class turns the records of the partitions assigned here into running
// streams of the LiveRunner.
//
// Offsets are never committed: after every join the worker reads its partitions from the beginning, which for
// a compacted topic is the current camera list (plus changes as they come). Unchanged entries read again leave
// a running camera alone; a changed entry restarts it; a tombstone stops it.
//
// Rebalances do not stop cameras. The assignment is sticky (src/kafka/sticky-assigner.ts): a camera whose
// partition stays here keeps running, untouched, through any rebalance; only the partitions that leave this
// worker are stopped (ingest killed at once, open tracks end with `reassigned`, then stream.end), when the new
// assignment arrives. A partition taken from a worker that is still in the group (it is handed to a worker
// that joined) starts here HANDOVER_MS later, so the old holder, which learns of the move at the same moment,
// has killed its ingest first. A partition whose holder left the group (killed, removed) starts at once; its
// stream.start names the worker it replaces (`stream.replaces`), since that worker wrote no stream.end.
//
// Stalls: a worker whose process was frozen longer than the session timeout (SIGSTOP, a VM pause) has been
// removed from the group and its cameras given to others, but it learns that only at its next heartbeat. It
// does not wait: the first timer after the freeze sees the gap and the unanswered heartbeats and stops every
// camera at once; they start again only when the group confirms them (a join, or a heartbeat answered after
// the freeze). A broker that cannot be reached does not stop cameras (nobody can take them over without it).
import { GroupMember, type GroupMembership } from '../kafka/group-member.js';
import type { Kafka, KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';
import type { StreamConfig } from '../config.js';
import { errorLine } from '../errors.js';
import { parseCameraValue } from '../kafka/cameras.js';
import type { SpellReplaces } from '../types.js';

/** What the group needs of the live runtime (LiveRunner). */
export interface CameraHost {
  start(cfg: StreamConfig, opts?: { replaces?: SpellReplaces }): unknown;
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
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
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
  /** seconds the last join took (rebalance noticed → assignment). */
  lastRebalanceSeconds: number | null;
  membership: GroupMembership;
  /** cameras stopped after a freeze of this process, until the group confirms them. */
  suspended: boolean;
}

/** How long a stop waits for a camera's last events before the group goes on. */
const STOP_WAIT_MS = 5_000;
/** A camera taken from a live worker starts this much later here (that worker kills its ingest meanwhile). */
export const HANDOVER_MS = 1_500;

interface Running {
  partition: number;
  cfg: StreamConfig;
}

export class CameraGroup {
  readonly #o: CameraGroupOptions;
  readonly #member: GroupMember;
  #assigned = new Set<number>();
  readonly #running = new Map<string, Running>();
  /** camera starts and stops, one at a time, in the order decided. */
  #ops: Promise<void> = Promise.resolve();
  #closed = false;
  /** bumped on every new assignment: a change decided before it must not start a camera after it. */
  #generation = 0;
  #fpsSample = new Map<string, { at: number; analysed: number; fps: number }>();
  /** the latest entry per camera of the partitions assigned here (what should run). */
  readonly #desired = new Map<string, Running>();
  /** removals not finished yet: the same camera cannot start again here until its old stream is gone. */
  readonly #removing = new Map<string, Promise<unknown>>();
  /** partitions gained in the current assignment: whom from, and (live holder) not before when. */
  #gained = new Map<number, { worker: string; lost: boolean; notBefore: number }>();
  #suspendedAt: number | undefined;
  #tick: NodeJS.Timeout | undefined;

  constructor(o: CameraGroupOptions) {
    this.#o = o;
    this.#member = new GroupMember({
      kafka: o.kafka,
      groupId: o.group,
      topic: o.topic,
      workerId: o.workerId,
      log: o.log,
      sessionTimeoutMs: o.sessionTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      weighByRecords: true,
      rewind: true,
      held: () => {
        const held: Record<number, number> = Object.fromEntries([...this.#assigned].map((p) => [p, 0]));
        for (const d of this.#desired.values()) held[d.partition] = (held[d.partition] ?? 0) + 1;
        return held;
      },
      eachMessage: async (partition, message) => this.#onRecord(partition, message),
      onAssigned: async (a) => {
        const lost = [...this.#assigned].filter((p) => !a.partitions.includes(p));
        this.#assigned = new Set(a.partitions);
        this.#generation++;
        const now = Date.now();
        this.#gained = new Map([...a.from].map(([p, f]) => [p, { ...f, notBefore: f.lost ? now : now + HANDOVER_MS }]));
        for (const [id, d] of [...this.#desired]) if (!this.#assigned.has(d.partition)) this.#desired.delete(id);
        if (lost.length > 0) this.#o.log.info({ partitions: lost }, 'group: partitions moved away; stopping their cameras');
        // at once, not behind queued changes: the ingest must be dead before the new holder connects
        const stopped = Promise.all([...this.#running].filter(([, r]) => !this.#assigned.has(r.partition)).map(([id]) => this.#stop(id)));
        this.#enqueue(async () => {
          await stopped;
          if (this.#suspendedAt !== undefined) this.#resume('the group assigned partitions again');
        });
      },
      onFrozen: () => this.#suspend(),
      onCrash: (restarting) => {
        // a consumer that crashed has left (or will be dropped from) the group: its cameras may go elsewhere
        if (!restarting) this.#enqueue(() => this.#stopAll());
      },
    });
  }

  async start(): Promise<void> {
    this.#tick = setInterval(() => this.#confirm(), 250);
    this.#tick.unref();
    await this.#member.start();
  }

  /** Stops every camera here (ingest first), then leaves the group so the others take them at once. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#tick);
    this.#generation++;
    const stopped = this.#stopAll(); // every ingest is dead before the group hears that we leave
    await this.#member.close();
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
    const membership = this.#member.state();
    return {
      workerId: this.#o.workerId,
      group: this.#o.group,
      topic: this.#o.topic,
      memberId: membership.memberId,
      partitions: [...this.#assigned].sort((a, b) => a - b),
      cameras: cameras.sort((a, b) => a.id.localeCompare(b.id)),
      rebalances: membership.rebalances,
      lastRebalanceSeconds: membership.lastRebalanceSeconds,
      membership,
      suspended: this.#suspendedAt !== undefined,
    };
  }

  /** Frozen past the session timeout: the cameras are probably someone else's by now. */
  #suspend(): void {
    if (this.#suspendedAt !== undefined) return;
    this.#suspendedAt = Date.now();
    this.#o.log.warn({ cameras: [...this.#running.keys()] }, 'group: stopping every camera until the group confirms them');
    const stopped = this.#stopAll();
    this.#enqueue(() => stopped);
  }

  /** A heartbeat answered after the freeze (not one in flight during it): still a member with these partitions. */
  #confirm(): void {
    if (this.#suspendedAt !== undefined && (this.#member.lastHeartbeatAt ?? 0) > this.#suspendedAt + 1_000) this.#resume('a heartbeat was answered after the freeze');
  }

  #resume(why: string): void {
    if (this.#suspendedAt === undefined) return;
    this.#suspendedAt = undefined;
    this.#o.log.info({ why }, 'group: cameras confirmed; starting them again');
    for (const [id, d] of this.#desired) if (!this.#running.has(id)) this.#enqueue(() => this.#apply(d.partition, id, d.cfg));
  }

  #onRecord(partition: number, message: KafkaMessage): void {
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
    if (this.#closed || generation !== this.#generation || !this.#assigned.has(partition) || this.#suspendedAt !== undefined) return;
    if (this.#removing.has(id)) return; // starts once the old stream is gone (#stop)
    const gained = this.#gained.get(partition);
    const wait = (gained?.notBefore ?? 0) - Date.now();
    if (wait > 0) {
      // taken from a live worker: it stops this camera now; start once its ingest is surely dead
      setTimeout(() => {
        const d = this.#desired.get(id);
        if (d !== undefined && generation === this.#generation) this.#enqueue(() => this.#apply(d.partition, id, d.cfg));
      }, wait).unref();
      return;
    }
    const replaces = gained === undefined ? undefined : ({ worker: gained.worker, reason: gained.lost ? 'worker-lost' : 'handover' } as const);
    this.#o.host.start(cfg, replaces === undefined ? {} : { replaces });
    this.#running.set(id, { partition, cfg });
    this.#o.log.info({ camera: id, partition, ...(replaces === undefined ? {} : { replaces }) }, 'group: camera started');
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
