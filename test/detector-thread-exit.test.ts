// A process that exits while its detector thread is inside onnxruntime must exit with its own code. Without the
// shared guard (detector-thread.ts) it aborted with SIGABRT (exit 134) in about two runs of three of
// `analyze d0.mp4 | head -1`: the thread returned from run() into a terminated isolate.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { sharedPath } from './helpers/shared.js';
import { tempDir } from './helpers/videos.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

function runNode(script: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((res) => {
    execFile(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe('detector thread at process exit', () => {
  it('process.exit while the thread detects, five times: the process exits with its own code, never SIGABRT', async () => {
    const script = join(tmp.dir, 'exit-while-busy.mts');
    writeFileSync(
      script,
      `import { loadFaceDetectorThread } from ${JSON.stringify(join(repoRoot, 'src/model/detector-thread.ts'))};
import { loadImageFrame } from ${JSON.stringify(join(repoRoot, 'src/ingest/image.ts'))};
const frame = await loadImageFrame(${JSON.stringify(sharedPath('data', 'images', 'faces.jpg'))});
const detector = await loadFaceDetectorThread({ tile: true });
let done = 0;
// keep the thread busy: a tiled pass is several model calls
for (let i = 0; i < 4; i++) void (async () => { for (;;) { await detector.detect(frame, { scan: true, expected: [] }).catch(() => {}); done++; } })();
setTimeout(() => { console.log(done); process.exit(7); }, 300 + Math.floor(Math.random() * 200));
`,
    );
    for (let i = 0; i < 5; i++) {
      const r = await runNode(script);
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).not.toMatch(/terminate called|Aborted/);
      expect(Number(r.stdout.trim())).toBeGreaterThan(0); // it was detecting, not idle
    }
  }, 120_000);
});
