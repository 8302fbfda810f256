// Pure parts of the worker group: the partition assigner (cameras spread evenly whatever order the broker
// lists partitions in) and the control records' validation (a bad record names the camera and the cause).
import { AssignerProtocol } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { parseCameraValue } from '../src/kafka/cameras.js';
import { cameraAssigner } from '../src/live/camera-group.js';

describe('worker group', () => {
  it('deals partitions in id order over members sorted by id, whatever the metadata order', async () => {
    const cluster = { findTopicPartitionMetadata: () => [0, 3, 1, 4, 2, 5].map((partitionId) => ({ partitionId })) };
    const assigner = cameraAssigner({ cluster } as never);
    const members = ['m-b', 'm-a', 'm-c'].map((memberId) => ({ memberId, memberMetadata: Buffer.alloc(0) }));
    const out = await assigner.assign({ members, topics: ['cams'] } as never);
    const got = Object.fromEntries(out.map((o) => [o.memberId, AssignerProtocol.MemberAssignment.decode(o.memberAssignment)!.assignment['cams']]));
    expect(got).toEqual({ 'm-a': [0, 3], 'm-b': [1, 4], 'm-c': [2, 5] });
  });

  it('reads a camera record: the key is the id, a tombstone is a removal, a bad value names the camera', () => {
    expect(parseCameraValue('door', JSON.stringify({ url: 'rtsp://10.0.0.2/s', sampleFps: 2 }))).toMatchObject({ id: 'door', url: 'rtsp://10.0.0.2/s', sampleFps: 2, transport: 'tcp' });
    expect(parseCameraValue('door', null)).toBeNull();
    expect(() => parseCameraValue('door', '{nope')).toThrow(/camera door: value is not JSON/);
    expect(() => parseCameraValue('door', JSON.stringify({ id: 'gate', url: 'rtsp://x/y' }))).toThrow(/camera door: value says id "gate"/);
    expect(() => parseCameraValue('door', JSON.stringify({ url: 'http://x/y' }))).toThrow(ConfigError);
  });
});
