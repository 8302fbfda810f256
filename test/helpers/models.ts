// Which ONNX models the pipeline tests run: $CAFE_TEST_MODELS when set (e.g. `models` once the trained ones
// ship), else the tiny random models with the real interface that test/fixtures/make-tiny-models.py writes
// into .cache/tiny-models/ (made on first use, with the trainer's Python environment).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TINY_MODELS_DIR = join(repoRoot, '.cache', 'tiny-models');
export const REAL_MODELS_DIR = join(repoRoot, 'models');
/** The float encoder the head was trained on, with the head: a models folder of its own, built by scripts/setup-trainer.sh. */
export const FLOAT_MODELS_DIR = join(repoRoot, '.cache', 'models-float');

/** The float model set; throws naming the script that builds it while it is absent. */
export function floatModelsDir(): string {
  if (!existsSync(join(FLOAT_MODELS_DIR, 'encoder-faceres-emotion-faceapi.onnx'))) {
    throw new Error(`no float encoder in ${FLOAT_MODELS_DIR}: run scripts/setup-trainer.sh (it builds it from the npm packages)`);
  }
  return FLOAT_MODELS_DIR;
}

function hasHead(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir)
    .filter((f) => f.endsWith('.onnx.json'))
    .some((f) => {
      try {
        return (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { role?: unknown }).role === 'head';
      } catch {
        return false;
      }
    });
}

let made: Promise<string> | undefined;

export function testModelsDir(): Promise<string> {
  const fromEnv = process.env['CAFE_TEST_MODELS'];
  if (fromEnv !== undefined && fromEnv !== '') return Promise.resolve(resolve(repoRoot, fromEnv));
  made ??= (async () => {
    if (hasHead(TINY_MODELS_DIR)) return TINY_MODELS_DIR;
    const python = join(repoRoot, 'trainer', '.venv', 'bin', 'python');
    const script = join(repoRoot, 'test', 'fixtures', 'make-tiny-models.py');
    if (!existsSync(script)) throw new Error(`missing ${script}: cannot make the tiny test models`);
    await promisify(execFile)(existsSync(python) ? python : 'python3', [script, TINY_MODELS_DIR], { cwd: repoRoot });
    if (!hasHead(TINY_MODELS_DIR)) throw new Error(`${script} did not write a head manifest into ${TINY_MODELS_DIR}`);
    return TINY_MODELS_DIR;
  })();
  return made;
}

/** The trained models in models/ (the d0 happiness test needs them); throws a clear error while they are absent. */
export function realModelsDir(): string {
  if (!hasHead(REAL_MODELS_DIR)) throw new Error(`no trained head in ${REAL_MODELS_DIR}: export the models first (see trainer/README)`);
  return REAL_MODELS_DIR;
}
