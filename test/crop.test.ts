import { describe, expect, it } from 'vitest';
import { cropFace, cropSquare, extractClamped } from '../src/pipeline/crop.js';
import type { Frame } from '../src/types.js';

/** A frame whose pixel (x, y) is (x, y, 7). */
function gradient(width: number, height: number): Frame {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x, y, 7], (y * width + x) * 3);
  return { streamId: 's', frameId: 0, pts: 0, width, height, data };
}
const px = (buf: Buffer, side: number, x: number, y: number): number[] => [...buf.subarray((y * side + x) * 3, (y * side + x) * 3 + 3)];

describe('crop', () => {
  it('frames a square around the box, scaled by the margin', () => {
    expect(cropSquare({ x: 100, y: 50, width: 40, height: 60 }, 1.3)).toEqual({ x: 81, y: 41, width: 78, height: 78 });
  });

  it('copies inside pixels exactly and replicates the nearest edge pixel outside the frame', () => {
    const frame = gradient(20, 10);
    const out = extractClamped(frame, { x: -3, y: -2, width: 8, height: 8 });
    expect(px(out, 8, 3, 2)).toEqual([0, 0, 7]); // frame (0,0)
    expect(px(out, 8, 7, 7)).toEqual([4, 5, 7]); // frame (4,5)
    expect(px(out, 8, 0, 0)).toEqual([0, 0, 7]); // outside top-left → corner pixel
    expect(px(out, 8, 0, 5)).toEqual([0, 3, 7]); // outside left → same row's first pixel
    const right = extractClamped(frame, { x: 17, y: 8, width: 6, height: 6 });
    expect(px(right, 6, 5, 5)).toEqual([19, 9, 7]); // outside bottom-right → corner
    expect(px(right, 6, 1, 0)).toEqual([18, 8, 7]);
    const beyond = extractClamped(frame, { x: 30, y: 3, width: 2, height: 2 });
    expect(px(beyond, 2, 0, 0)).toEqual([19, 3, 7]); // entirely outside → the edge column
  });

  it('resizes to the model crop size', async () => {
    const frame = gradient(200, 100);
    const rgb = await cropFace(frame, { x: 50, y: 20, width: 60, height: 60 }, 32, 1.3);
    expect(rgb.length).toBe(32 * 32 * 3);
    // Left-to-right gradient survives the resize: red grows along a row.
    expect(px(rgb, 32, 31, 16)[0]!).toBeGreaterThan(px(rgb, 32, 0, 16)[0]!);
  });
});
