// The package as a user gets it: `npm pack`, installed into an empty project outside the repo with
// `ONNXRUNTIME_NODE_INSTALL=skip npm i <tarball>`, then a plain .mjs program imports 'cafe-stream' and analyses
// d0.mp4 with `for await` and with `.subscribe`, and a TypeScript consumer typechecks against the published
// .d.ts (a misspelt event field must not compile). The tarball holds no test data and stays under 20 MB.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedPath } from './helpers/shared.js';

const run = promisify(execFile);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'cafe-stream-pack-'));
const project = join(work, 'consumer');
let tarball: string;
let files: string[];

beforeAll(async () => {
  // prepack builds dist/ (tsconfig.build.json) first
  const packed = await run('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
  tarball = join(work, packed.stdout.trim().split('\n').pop()!);
  files = (await run('tar', ['-tzf', tarball], { maxBuffer: 16 * 1024 * 1024 })).stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await run('npm', ['i', tarball, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: project,
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
    maxBuffer: 16 * 1024 * 1024,
    timeout: 540_000,
  });
}, 600_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the npm package', () => {
  it('is at most 20 MB and holds the library, its types, the models and the schema, and no tests or data', () => {
    const mb = statSync(tarball).size / 1e6;
    expect(mb).toBeLessThanOrEqual(20);
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'bin/cafe-stream.js', 'schema/events.v1.json', 'LICENSE', 'README.md', 'CHANGELOG.md', 'scripts/setup-gpu.sh']) {
      expect(files).toContain(f);
    }
    // the int8 encoder, the head and the face detectors ship; the float encoder (built by scripts/setup-trainer.sh) does not
    expect(files.filter((f) => /^models\/.*\.onnx$/.test(f)).sort()).toEqual([
      'models/cafe-head.onnx',
      'models/detector/face-detector-full.onnx',
      'models/detector/face-detector-short.onnx',
      'models/encoder-faceres-emotion-faceapi-int8.onnx',
    ]);
    expect(files.filter((f) => /^(test|trainer|bench|examples|src)\//.test(f) || /\.(mp4|jpg|jpeg|png|csv|map)$/.test(f))).toEqual([]);
  });

  it('a plain .mjs program analyses d0.mp4 with for await and with .subscribe', async () => {
    writeFileSync(
      join(project, 'use.mjs'),
      `import { analyze, createAnalyzer, parseEvent } from 'cafe-stream';
const file = process.argv[2];
const viaAwait = [];
for await (const e of analyze(file, { device: 'cpu', sampleFps: 5 })) viaAwait.push(parseEvent(JSON.stringify(e)).type);
const viaSubscribe = await new Promise((resolve, reject) => {
  const seen = [];
  analyze(file, { device: 'cpu', sampleFps: 5 }).subscribe({ next: (e) => seen.push(e.type), error: reject, complete: () => resolve(seen) });
});
console.log(JSON.stringify({ viaAwait, viaSubscribe, analyzer: typeof createAnalyzer }));
`,
    );
    const r = await run(process.execPath, ['use.mjs', sharedPath('data', 'videos', 'd0.mp4')], { cwd: project, maxBuffer: 16 * 1024 * 1024 });
    const out = JSON.parse(r.stdout) as { viaAwait: string[]; viaSubscribe: string[]; analyzer: string };
    expect(out.viaAwait[0]).toBe('stream.start');
    expect(out.viaAwait.at(-1)).toBe('stream.end');
    expect(out.viaAwait.filter((t) => t === 'face.observation').length).toBeGreaterThan(5);
    expect(out.viaSubscribe).toEqual(out.viaAwait);
    expect(out.analyzer).toBe('function');
  });

  it('scripts/setup-gpu.sh finds the onnxruntime-node of a project that installed cafe-stream', async () => {
    // --remove needs no network: it resolves onnxruntime-node, removes provider links (none) and the .gpu folder
    const r = await run('bash', [join(project, 'node_modules', 'cafe-stream', 'scripts', 'setup-gpu.sh'), '--remove'], { cwd: project });
    expect(r.stdout).toContain(`removed the CUDA provider links from ${join(project, 'node_modules', 'onnxruntime-node')}`);
  });

  it('the installed command runs', async () => {
    const r = await run(join(project, 'node_modules', '.bin', 'cafe-stream'), ['--version'], { cwd: project });
    expect(r.stdout.trim()).toBe('0.2.0');
  });

  it('a TypeScript consumer typechecks against the published types; a misspelt event field does not', async () => {
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const consumer = (field: string): string => `import { analyze, createAnalyzer, toJsonl, type TimelineEvent, type FaceObservationEvent, CafeStreamError } from 'cafe-stream';
const analyzer = createAnalyzer({ device: 'cpu', batchSize: 8 });
function describe(e: TimelineEvent): string {
  switch (e.type) {
    case 'face.observation': return e.label + ' ' + e.${field}.toFixed(2);
    case 'stream.end': return e.reason;
    default: return e.type;
  }
}
const obs: FaceObservationEvent[] = [];
analyzer.analyze('x.mp4').pipe(toJsonl('out.jsonl')).subscribe({ next: (e) => { if (e.type === 'face.observation') obs.push(e); console.log(describe(e)); }, error: (err: unknown) => { if (err instanceof CafeStreamError) console.log(err.code); } });
for await (const e of analyze('y.mp4')) console.log(e.streamId);
`;
    writeFileSync(join(project, 'good.ts'), consumer('confidence'));
    writeFileSync(join(project, 'bad.ts'), consumer('confidense'));
    // the consumer's own compiler settings: strict NodeNext ESM, Node's types from this repo (no download)
    const check = (file: string) =>
      run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--skipLibCheck', '--types', 'node', '--typeRoots', join(repoRoot, 'node_modules', '@types'), file], { cwd: project });
    await expect(check('good.ts')).resolves.toBeDefined();
    const bad = await check('bad.ts').then(() => undefined, (e: { stdout: string }) => e.stdout);
    expect(bad).toMatch(/bad\.ts\(5,.*'confidense' does not exist on type 'FaceObservationEvent'/);
  });
});
