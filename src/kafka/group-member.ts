// One worker's membership of one consumer group (the cameras group, the jobs group): a kafkajs consumer with
// the sticky assigner, kept in the group whatever happens to it.
//
// - It never stays out: kafkajs restarts a consumer after a retriable crash by itself; after any other crash
//   this class disconnects it and starts a fresh one with backoff. Every crash counts in `restarts`.
// - Heartbeats: kafkajs heartbeats only from its fetch loop, between fetches, and an idle fetch waits
//   `maxWaitTimeInMs` (5 s by default) on the broker: that was up to 5 s before a member noticed a rebalance
//   (issue 20: joins of 4.9 s). Fetches here wait at most FETCH_WAIT_MS, so a member hears of a rebalance
//   within a heartbeat interval. The callbacks below must return quickly for the same reason: long work
//   (a file job) runs outside eachMessage.
// - After every join it reads its own assignment back from the broker (describeGroups): kafkajs hands the
//   GROUP_JOIN listener the partitions but not the assignment's userData, which says the generation and whom
//   each gained partition comes from (src/kafka/sticky-assigner.ts).
import { AssignerProtocol, type Admin, type Consumer, type Kafka, type KafkaMessage } from 'kafkajs';
import type { Logger } from 'pino';
import { errorLine } from '../errors.js';
import { decodeAssignment, stickyAssigner, type MemberClaim } from './sticky-assigner.js';

const FETCH_WAIT_MS = 250;
/** The freeze watch ticks this often; a tick this much late means the process was frozen (SIGSTOP, VM pause). */
const TICK_MS = 250;
const FREEZE_MS = 2_000;
const RESTART_BACKOFF_MS = [500, 1_000, 2_000, 5_000];
/** How long leaving the group may take at shutdown. */
const LEAVE_MS = 2_000;

/** true if `p` settled within `ms`. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return done;
}

export interface GroupAssignment {
  partitions: number[];
  generation: number;
  /** gained partitions: the worker that held them, and whether it left the group (died, was removed). */
  from: Map<number, { worker: string; lost: boolean }>;
  memberId: string;
}

export interface GroupMemberOptions {
  kafka: Kafka;
  groupId: string;
  topic: string;
  workerId: string;
  log: Logger;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** weigh partitions nobody holds by whether they ever held a record (camera list), else 1 each. */
  weighByRecords?: boolean;
  /** read every assigned partition from its start after each join (the camera list); default: from the committed offset. */
  rewind?: boolean;
  /** partition → weight of what this member runs now (its claim at the next join). */
  held: () => Record<number, number>;
  eachMessage: (partition: number, message: KafkaMessage) => Promise<void>;
  /** a rebalance began (kafkajs is about to rejoin). */
  onRebalancing?: () => void;
  /** a join completed; called in order, before any message of the new generation. */
  onAssigned: (a: GroupAssignment) => Promise<void>;
  /** the consumer crashed (it is out of the group until it rejoins). */
  onCrash?: (restarting: boolean) => void;
  /**
   * The process was frozen and no heartbeat was answered for about a session timeout: the broker has removed
   * this member and given its partitions to others, though kafkajs will only learn it at its next heartbeat.
   * Called from the first timer after the freeze, before anything else was decided on stale ownership.
   */
  onFrozen?: (frozenMs: number) => void;
}

export interface GroupMembership {
  group: string;
  /** joined and not crashed since. */
  member: boolean;
  memberId: string | null;
  generation: number;
  partitions: number[];
  /** seconds since it left or was never in the group; null while a member. */
  outSeconds: number | null;
  /** seconds since the last heartbeat the broker answered. */
  lastHeartbeatSeconds: number | null;
  rebalances: number;
  /** seconds the last join took (rebalance noticed → assignment). */
  lastRebalanceSeconds: number | null;
  /** consumer crashes (each followed by a restart and a rejoin). */
  restarts: number;
}

export class GroupMember {
  readonly #o: GroupMemberOptions;
  #consumer: Consumer | undefined;
  readonly #admin: Admin;
  #closed = false;
  #member = false;
  #outSince = Date.now();
  #memberId: string | null = null;
  #generation = 0;
  #partitions: number[] = [];
  #owners: Record<number, string> = {};
  #lastHeartbeat: number | undefined;
  #rebalances = 0;
  #rebalanceStarted: number | undefined;
  #lastRebalanceSeconds: number | null = null;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  /** joins are handled one after another (describeGroups is async). */
  #joins: Promise<void> = Promise.resolve();
  #tick: NodeJS.Timeout | undefined;
  #lastTick = Date.now();
  #frozenAt: number | undefined;

  constructor(o: GroupMemberOptions) {
    this.#o = o;
    this.#admin = o.kafka.admin();
  }

  async start(): Promise<void> {
    this.#tick = setInterval(() => this.#watch(), TICK_MS);
    this.#tick.unref();
    await this.#admin.connect();
    await this.#startConsumer();
  }

  get consumer(): Consumer | undefined {
    return this.#consumer;
  }

  /** when the broker last answered a heartbeat of this member (ms epoch). */
  get lastHeartbeatAt(): number | undefined {
    return this.#lastHeartbeat;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Leaves the group (the others take its partitions at once). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#tick);
    // a broker that is away cannot hear the leave: the session expires instead, so do not wait for kafkajs' retries
    const left = await within(this.#consumer?.disconnect() ?? Promise.resolve(), LEAVE_MS).catch((err: unknown) => {
      this.#o.log.warn({ group: this.#o.groupId, err: errorLine(err) }, 'group: disconnect failed');
      return true;
    });
    if (!left) this.#o.log.warn({ group: this.#o.groupId, waitedMs: LEAVE_MS }, 'group: could not leave the group (broker unreachable?); the broker drops this member when its session expires');
    await within(this.#admin.disconnect(), LEAVE_MS).catch(() => undefined);
    this.#member = false;
  }

  state(): GroupMembership {
    const now = Date.now();
    return {
      group: this.#o.groupId,
      member: this.#member,
      memberId: this.#memberId,
      generation: this.#generation,
      partitions: [...this.#partitions],
      outSeconds: this.#member ? null : Math.round((now - this.#outSince) / 100) / 10,
      lastHeartbeatSeconds: this.#lastHeartbeat === undefined ? null : Math.round((now - this.#lastHeartbeat) / 100) / 10,
      rebalances: this.#rebalances,
      lastRebalanceSeconds: this.#lastRebalanceSeconds,
      restarts: this.#restarts,
    };
  }

  /** when the last freeze past the session timeout was noticed; cleared by the next join. */
  get frozenAt(): number | undefined {
    return this.#frozenAt;
  }

  #watch(): void {
    const now = Date.now();
    const gap = now - this.#lastTick;
    this.#lastTick = now;
    const silent = now - (this.#lastHeartbeat ?? now);
    // a broker that is away does not count: the loop kept running, and nobody can take partitions without it
    if (gap < FREEZE_MS || !this.#member || silent < this.#o.sessionTimeoutMs - this.#o.heartbeatIntervalMs) return;
    this.#frozenAt = now;
    this.#o.log.warn({ group: this.#o.groupId, frozenMs: gap, heartbeatSilentMs: silent }, 'group: this process was frozen past the session timeout; assuming its partitions are gone');
    this.#o.onFrozen?.(gap);
  }

  #claim = (): MemberClaim => ({ workerId: this.#o.workerId, generation: this.#generation, held: this.#o.held(), owners: this.#owners });

  async #startConsumer(): Promise<void> {
    const o = this.#o;
    const c = o.kafka.consumer({
      groupId: o.groupId,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      // members rejoin within a heartbeat or two now; the bound only matters for a member that cannot
      rebalanceTimeout: Math.max(o.sessionTimeoutMs, 10_000),
      maxWaitTimeInMs: FETCH_WAIT_MS,
      allowAutoTopicCreation: false,
      partitionAssigners: [stickyAssigner({ claim: this.#claim, ...(o.weighByRecords === undefined ? {} : { weighByRecords: o.weighByRecords }) })],
    });
    this.#consumer = c;
    c.on(c.events.HEARTBEAT, () => (this.#lastHeartbeat = Date.now()));
    c.on(c.events.REBALANCING, () => {
      this.#rebalanceStarted ??= Date.now();
      o.log.info({ group: o.groupId, partitions: this.#partitions }, 'group: rebalancing');
      o.onRebalancing?.();
    });
    c.on(c.events.GROUP_JOIN, (e) => {
      const partitions = [...(e.payload.memberAssignment[o.topic] ?? [])].sort((a, b) => a - b);
      const memberId = e.payload.memberId;
      // synchronously, before the fetch loop goes on under the new assignment
      if (o.rewind) for (const partition of partitions) c.seek({ topic: o.topic, partition, offset: '0' });
      this.#joins = this.#joins.then(() => this.#joined(c, memberId, partitions, e.payload.duration));
      // the callback runs before the fetch loop resumes; the consumer's own work (eachMessage) waits on #joins
    });
    c.on(c.events.CRASH, (e) => {
      this.#restarts++;
      this.#setOut();
      o.log.error({ group: o.groupId, err: errorLine(e.payload.error), restart: e.payload.restart }, 'group: consumer crashed');
      o.onCrash?.(e.payload.restart);
      // kafkajs restarts it after a retriable error; anything else: a fresh consumer, so it is never left out
      if (!e.payload.restart && !this.#closed) this.#restartLater(c);
    });
    try {
      await c.connect();
      await c.subscribe({ topic: o.topic, fromBeginning: true });
      await c.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          await this.#joins;
          await o.eachMessage(partition, message);
        },
      });
    } catch (err) {
      this.#restarts++;
      o.log.error({ group: o.groupId, err: errorLine(err) }, 'group: could not join; retrying');
      this.#restartLater(c);
    }
  }

  #restartLater(old: Consumer): void {
    if (this.#closed) return;
    const wait = RESTART_BACKOFF_MS[Math.min(this.#restarts - 1, RESTART_BACKOFF_MS.length - 1)] ?? 5_000;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      void old
        .disconnect()
        .catch(() => undefined)
        .then(() => (this.#closed ? undefined : this.#startConsumer()));
    }, wait);
  }

  #setOut(): void {
    if (this.#member) this.#outSince = Date.now();
    this.#member = false;
  }

  async #joined(c: Consumer, memberId: string, partitions: number[], durationMs: number): Promise<void> {
    if (c !== this.#consumer) return;
    const o = this.#o;
    let assignment = undefined as ReturnType<typeof decodeAssignment>;
    try {
      const { groups } = await this.#admin.describeGroups([o.groupId]);
      const me = groups[0]?.members.find((m) => m.memberId === memberId);
      if (me !== undefined) assignment = decodeAssignment(AssignerProtocol.MemberAssignment.decode(me.memberAssignment)?.userData);
    } catch (err) {
      o.log.warn({ group: o.groupId, err: errorLine(err) }, 'group: could not read the assignment back; hand-overs unnamed');
    }
    this.#memberId = memberId;
    this.#frozenAt = undefined;
    this.#generation = assignment?.generation ?? this.#generation + 1;
    this.#owners = assignment?.owners ?? {};
    this.#partitions = partitions;
    this.#member = true;
    this.#lastHeartbeat = Date.now();
    this.#rebalances++;
    if (this.#rebalanceStarted !== undefined) this.#lastRebalanceSeconds = (Date.now() - this.#rebalanceStarted) / 1000;
    this.#rebalanceStarted = undefined;
    const from = new Map(Object.entries(assignment?.from ?? {}).map(([p, f]) => [Number(p), f]));
    o.log.info({ group: o.groupId, partitions, memberId, generation: this.#generation, durationMs, from: Object.fromEntries(from) }, 'group: joined');
    await o.onAssigned({ partitions, generation: this.#generation, from, memberId });
  }
}
