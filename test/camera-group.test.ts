// Pure parts of the worker group: the sticky partition assigner (a fresh group is dealt in id order whatever
// order the broker lists partitions in; afterwards survivors keep what they hold, only orphans move, a stale
// claim loses to a newer one) and the control records' validation (a bad record names the camera and the cause).
import { AssignerProtocol } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { parseCameraValue } from '../src/kafka/cameras.js';
import { encodeClaim, stickyAssigner, stickyPlan, type MemberClaim } from '../src/kafka/sticky-assigner.js';

describe('worker group', () => {
  it('deals partitions in id order over members sorted by id, whatever the metadata order', async () => {
    const cluster = { findTopicPartitionMetadata: () => [0, 3, 1, 4, 2, 5].map((partitionId) => ({ partitionId })) };
    const assigner = stickyAssigner({ claim: () => ({ workerId: 'x', generation: 0, held: {}, owners: {} }) })({ cluster } as never);
    const members = ['m-b', 'm-a', 'm-c'].map((memberId) => ({ memberId, memberMetadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics: ['cams'], userData: Buffer.alloc(0) }) }));
    const out = await assigner.assign({ members, topics: ['cams'] } as never);
    const got = Object.fromEntries(out.map((o) => [o.memberId, AssignerProtocol.MemberAssignment.decode(o.memberAssignment)!.assignment['cams']]));
    expect(got).toEqual({ 'm-a': [0, 3], 'm-b': [1, 4], 'm-c': [2, 5] });
  });

  it('keeps partitions with their holders: only orphans move, to the least loaded; a newer claim wins', () => {
    const claim = (workerId: string, generation: number, held: number[], w = 1): MemberClaim => ({ workerId, generation, held: Object.fromEntries(held.map((p) => [p, w])), owners: {} });
    const parts = [0, 1, 2, 3, 4, 5];
    // w2 (held 1, 4) died: its partitions go one to each survivor, nothing else moves
    const after = stickyPlan([{ memberId: 'a', claim: claim('w1', 3, [0, 3]) }, { memberId: 'c', claim: claim('w3', 3, [2, 5]) }], parts, () => 1);
    expect(after.get('a')!.filter((p) => ![1, 4].includes(p))).toEqual([0, 3]);
    expect(after.get('c')!.filter((p) => ![1, 4].includes(p))).toEqual([2, 5]);
    expect([after.get('a')!.length, after.get('c')!.length]).toEqual([3, 3]);
    // a newcomer takes one unit of work from each of the two loaded members, not more
    const joined = stickyPlan([{ memberId: 'a', claim: claim('w1', 4, [0, 1, 3]) }, { memberId: 'c', claim: claim('w3', 4, [2, 4, 5]) }, { memberId: 'd', claim: undefined }], parts, () => 1);
    expect(joined.get('d')!.length).toBe(2);
    expect(joined.get('a')!.every((p) => [0, 1, 3].includes(p)) && joined.get('c')!.every((p) => [2, 4, 5].includes(p))).toBe(true);
    // a stalled member rejoins claiming what it held two generations ago: the newer holder keeps it
    const stale = stickyPlan([{ memberId: 'a', claim: claim('w1', 5, [0, 1, 2]) }, { memberId: 'b', claim: claim('w2', 3, [1, 2]) }], [0, 1, 2], () => 1);
    expect(stale.get('a')!.length).toBe(2);
    expect(stale.get('a')).toContain(0);
    // empty camera partitions carry no work: cameras, not partitions, are balanced
    const weighted = stickyPlan([{ memberId: 'a', claim: undefined }, { memberId: 'b', claim: undefined }], [0, 1, 2, 3, 4, 5], (p) => (p < 2 ? 1 : 0));
    expect(weighted.get('a')!.filter((p) => p < 2).length).toBe(1);
    expect(encodeClaim(claim('w1', 1, [0])).length).toBeGreaterThan(0);
  });

  it('reads a camera record: the key is the id, a tombstone is a removal, a bad value names the camera', () => {
    expect(parseCameraValue('door', JSON.stringify({ url: 'rtsp://10.0.0.2/s', sampleFps: 2 }))).toMatchObject({ id: 'door', url: 'rtsp://10.0.0.2/s', sampleFps: 2, transport: 'tcp' });
    expect(parseCameraValue('door', null)).toBeNull();
    expect(() => parseCameraValue('door', '{nope')).toThrow(/camera door: value is not JSON/);
    expect(() => parseCameraValue('door', JSON.stringify({ id: 'gate', url: 'rtsp://x/y' }))).toThrow(/camera door: value says id "gate"/);
    expect(() => parseCameraValue('door', JSON.stringify({ url: 'http://x/y' }))).toThrow(ConfigError);
  });
});
