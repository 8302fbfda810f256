// Session options for the model stage: how many intra-op threads, and a pool that does not spin on a CPU it
// shares with the detector and ffmpeg. Checked on a real session (the Node binding takes `extra` entries only as
// strings, and refuses anything else).
import { describe, expect, it } from 'vitest';
import { CPU_INTRA_OP_THREADS } from '../src/model/expression-model.js';
import { blazeFaceOnnxPath } from '../src/model/blazeface-onnx.js';
import { createSession, ort, sessionOptions } from '../src/model/onnx-runtime.js';

describe('onnxruntime session options', () => {
  it('a CPU pool of more than one thread does not spin; one thread, or a GPU provider, keeps the defaults', () => {
    expect(CPU_INTRA_OP_THREADS).toBe(2);
    expect(sessionOptions('cpu', 2)).toMatchObject({ intraOpNumThreads: 2, extra: { session: { intra_op: { allow_spinning: '0' } } } });
    expect(sessionOptions('cpu')).toMatchObject({ extra: { session: { intra_op: { allow_spinning: '0' } } } });
    expect(sessionOptions('cpu', 1).extra).toBeUndefined();
    expect(sessionOptions('cuda', 2).extra).toBeUndefined();
    expect(() => sessionOptions('cpu', 0)).toThrow(/threads/);
  });

  it('CPU sessions keep the arena but plan no memory pattern (its second allocation made a fresh session pay twice)', () => {
    expect(sessionOptions('cpu', 1).enableMemPattern).toBe(false);
    expect(sessionOptions('cpu', 2).enableMemPattern).toBe(false);
    expect(sessionOptions('cpu', 1).enableCpuMemArena).toBeUndefined();
    expect(sessionOptions('cuda', 2).enableMemPattern).toBeUndefined();
  });

  it('the binding accepts them: a two-thread, non-spinning session runs a real model', async () => {
    const session = await createSession(blazeFaceOnnxPath('short'), 'cpu', 2);
    try {
      const out = await session.run({ image: new ort.Tensor('float32', new Float32Array(128 * 128 * 3), [1, 128, 128, 3]) });
      expect(out.detections!.dims).toEqual([1, 896, 17]);
    } finally {
      await session.release();
    }
  });
});
