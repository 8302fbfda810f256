// Sticky partition assignment for the worker group's consumer groups (cameras and jobs).
//
// kafkajs' rebalance is eager: every member rejoins and the leader assigns every partition again. Dealing
// round robin on each rebalance moves partitions between workers that are both alive (issue 20: a kill moved
// 4 of 6 cameras). Here the leader keeps every partition with the member that held it, deals only orphaned
// partitions (their holder left or died) to the least loaded members, and moves a partition between two live
// members only to even out a difference of more than one unit of work (a worker joined).
//
// What a member held travels in its join metadata (userData, JSON): the generation of its assignment and its
// partitions with their weight (cameras in them). A member that was removed from the group without noticing
// (a stalled process) reports a claim of an older generation; the newer claim wins, so a partition is never
// given back to a stale holder while its new holder is alive. The assignment a member receives carries the
// whole map (partition → worker) and, per partition it gains, whom it takes it from and whether that worker is
// still in the group: the camera group uses it to name the spell a camera's new stream replaces.
import { AssignerProtocol, type Assigner, type Cluster, type GroupMember, type PartitionAssigner } from 'kafkajs';

export const STICKY_ASSIGNER_NAME = 'CafeStreamStickyAssigner';

/** What a member says it holds when it (re)joins. */
export interface MemberClaim {
  workerId: string;
  /** generation of the assignment it holds (0: none yet). */
  generation: number;
  /** partition → weight (units of work: cameras, or 1 per job partition). */
  held: Record<number, number>;
  /** partition → worker, the whole map of the last assignment this member received. */
  owners: Record<number, string>;
}

/** What a member receives. */
export interface StickyAssignment {
  generation: number;
  owners: Record<number, string>;
  /** partitions this member gains: the worker that held them and whether it is still a member. */
  from: Record<number, { worker: string; lost: boolean }>;
}

export interface PlanMember {
  memberId: string;
  claim: MemberClaim | undefined;
}

/**
 * The pure assignment: member id → partitions (sorted). `weightOf` gives the weight of a partition nobody
 * claims (cameras: 1 if the partition has ever held a record, else 0).
 */
export function stickyPlan(members: PlanMember[], partitions: number[], weightOf: (p: number) => number): Map<string, number[]> {
  const ids = members.map((m) => m.memberId).sort();
  const owner = new Map<number, { member: string; generation: number }>();
  const weight = new Map<number, number>(partitions.map((p) => [p, weightOf(p)]));
  for (const m of [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : 1))) {
    if (m.claim === undefined) continue;
    for (const [k, w] of Object.entries(m.claim.held)) {
      const p = Number(k);
      if (!weight.has(p)) continue;
      const cur = owner.get(p);
      if (cur !== undefined && cur.generation >= m.claim.generation) continue;
      owner.set(p, { member: m.memberId, generation: m.claim.generation });
      weight.set(p, w);
    }
  }
  const held = new Map<string, number[]>(ids.map((id) => [id, []]));
  for (const [p, o] of owner) held.get(o.member)!.push(p);
  const load = (id: string): number => held.get(id)!.reduce((s, p) => s + weight.get(p)!, 0);
  const count = (id: string): number => held.get(id)!.length;
  const lightest = (): string => ids.reduce((best, id) => (load(id) < load(best) || (load(id) === load(best) && count(id) < count(best)) ? id : best), ids[0]!);
  // orphans, heaviest first, each to the member with the least work (then the fewest partitions)
  const orphans = partitions.filter((p) => !owner.has(p)).sort((a, b) => weight.get(b)! - weight.get(a)! || a - b);
  for (const p of orphans) held.get(lightest())!.push(p);
  // even out work between live members: move a partition only if that narrows the gap
  for (let guard = 0; guard < partitions.length * 2; guard++) {
    const heavy = ids.reduce((best, id) => (load(id) > load(best) ? id : best), ids[0]!);
    const light = lightest();
    const gap = load(heavy) - load(light);
    const movable = held.get(heavy)!.filter((p) => weight.get(p)! > 0 && weight.get(p)! < gap).sort((a, b) => weight.get(a)! - weight.get(b)! || b - a);
    if (movable.length === 0) break;
    const p = movable[0]!;
    held.set(heavy, held.get(heavy)!.filter((x) => x !== p));
    held.get(light)!.push(p);
  }
  // partitions without work (empty camera partitions) only even out the partition counts
  for (let guard = 0; guard < partitions.length * 2; guard++) {
    const most = ids.reduce((best, id) => (count(id) > count(best) ? id : best), ids[0]!);
    const least = ids.reduce((best, id) => (count(id) < count(best) ? id : best), ids[0]!);
    if (count(most) - count(least) <= 1) break;
    const empty = held.get(most)!.filter((p) => weight.get(p) === 0).sort((a, b) => b - a);
    if (empty.length === 0) break;
    held.set(most, held.get(most)!.filter((x) => x !== empty[0]));
    held.get(least)!.push(empty[0]!);
  }
  for (const list of held.values()) list.sort((a, b) => a - b);
  return held;
}

export function encodeClaim(c: MemberClaim): Buffer {
  return Buffer.from(JSON.stringify(c));
}

export function decodeClaim(buf: Buffer | null | undefined): MemberClaim | undefined {
  if (buf === null || buf === undefined || buf.length === 0) return undefined;
  try {
    const c = JSON.parse(buf.toString()) as MemberClaim;
    return typeof c.generation === 'number' && typeof c.workerId === 'string' ? c : undefined;
  } catch {
    return undefined; // a member of another version: treated as holding nothing
  }
}

export function decodeAssignment(buf: Buffer | null | undefined): StickyAssignment | undefined {
  if (buf === null || buf === undefined || buf.length === 0) return undefined;
  try {
    return JSON.parse(buf.toString()) as StickyAssignment;
  } catch {
    return undefined;
  }
}

/** Weight of unclaimed partitions: 1 per partition that has ever held a record (cameras), from the broker. */
async function recordedPartitions(cluster: Cluster, topic: string, partitions: number[]): Promise<Set<number>> {
  try {
    const res = await cluster.fetchTopicsOffset([{ topic, partitions: partitions.map((partition) => ({ partition })) } as never]);
    return new Set(res.flatMap((t) => t.partitions.filter((p) => BigInt(p.offset) > 0n).map((p) => p.partition)));
  } catch {
    return new Set(partitions); // no offsets: every partition counts as work
  }
}

export interface StickyAssignerOptions {
  /** this member's claim, read at every join. */
  claim: () => MemberClaim;
  /** weigh unclaimed partitions by whether they ever held a record (the camera list), else 1 each. */
  weighByRecords?: boolean;
}

export function stickyAssigner(o: StickyAssignerOptions): PartitionAssigner {
  return ({ cluster }): Assigner => ({
    name: STICKY_ASSIGNER_NAME,
    version: 0,
    async assign({ members, topics }) {
      const claims = new Map<string, MemberClaim | undefined>(members.map((m: GroupMember) => [m.memberId, decodeClaim(AssignerProtocol.MemberMetadata.decode(m.memberMetadata)?.userData)]));
      const generation = Math.max(0, ...[...claims.values()].map((c) => c?.generation ?? 0)) + 1;
      // the last known map: from the member with the newest assignment
      const newest = [...claims.values()].filter((c) => c !== undefined).sort((a, b) => b!.generation - a!.generation)[0];
      const previous = newest?.owners ?? {};
      const liveWorkers = new Set([...claims.values()].map((c) => c?.workerId).filter((w) => w !== undefined));
      const perMember = new Map<string, Record<string, number[]>>(members.map((m) => [m.memberId, {}]));
      const owners: Record<number, string> = {};
      const from = new Map<string, Record<number, { worker: string; lost: boolean }>>(members.map((m) => [m.memberId, {}]));
      for (const topic of [...topics].sort()) {
        const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId).sort((a, b) => a - b);
        const recorded = o.weighByRecords ? await recordedPartitions(cluster, topic, partitions) : undefined;
        const plan = stickyPlan(
          members.map((m) => ({ memberId: m.memberId, claim: claims.get(m.memberId) })),
          partitions,
          (p) => (recorded === undefined || recorded.has(p) ? 1 : 0),
        );
        for (const [memberId, ps] of plan) {
          perMember.get(memberId)![topic] = ps;
          const worker = claims.get(memberId)?.workerId ?? memberId;
          for (const p of ps) {
            owners[p] = worker;
            const before = previous[p];
            if (before !== undefined && before !== worker) from.get(memberId)![p] = { worker: before, lost: !liveWorkers.has(before) };
          }
        }
      }
      return members.map((m) => ({
        memberId: m.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: perMember.get(m.memberId)!,
          userData: Buffer.from(JSON.stringify({ generation, owners, from: from.get(m.memberId)! } satisfies StickyAssignment)),
        }),
      }));
    },
    protocol({ topics }) {
      return { name: STICKY_ASSIGNER_NAME, metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: encodeClaim(o.claim()) }) };
    },
  });
}
