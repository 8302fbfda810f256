// Reading a FrameSource to its end in a test.
import type { Frame, FrameSource } from '../../src/types.js';

/** Every frame the source emits, each released at once; then how it ended (the error, if it failed). */
export function drain(source: FrameSource): Promise<{ frames: Frame[]; error?: unknown }> {
  const frames: Frame[] = [];
  return new Promise((resolve) => {
    source.frames().subscribe({
      next: (f) => {
        frames.push(f);
        source.release(f);
      },
      error: (error: unknown) => resolve({ frames, error }),
      complete: () => resolve({ frames }),
    });
  });
}
