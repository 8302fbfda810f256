// A closed stdout ends any command quietly with exit 0, as Unix tools do (`| head`): no EPIPE stack trace, no
// "sink failed" exit 8, and no ffmpeg left behind.
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { testModelsDir } from './helpers/models.js';
import { sharedPath } from './helpers/shared.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let models: string;

beforeAll(async () => {
  models = await testModelsDir();
});

/** `cafe-stream <args> | head -1` under pipefail: the status is cafe-stream's own unless it is 0. */
function throughHead(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" --import tsx src/cli/main.ts ${quoted} | head -1`], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((res) => child.on('close', (code) => res({ code, stdout, stderr })));
}

describe('a closed stdout', () => {
  it('evaluate --help | head -1: exit 0, nothing on stderr', async () => {
    const r = await throughHead(['evaluate', '--help']);
    expect(r.stdout.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('analyze d0.mp4 | head -1: exit 0, one event line, no error line', async () => {
    const r = await throughHead(['analyze', sharedPath('data', 'videos', 'd0.mp4'), '--models', models, '--device', 'cpu', '--quiet']);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ type: 'stream.start' });
    expect(r.stderr).not.toMatch(/error|EPIPE/);
    expect(r.code).toBe(0);
  });
});
