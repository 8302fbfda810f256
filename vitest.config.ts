import { defineConfig } from 'vitest/config';

// Tests run real ffmpeg, the real detector, real ONNX models and real brokers on 2 cores:
// files run one at a time so their timings don't fight over the CPU.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
