// Reading and checking model manifests on the tiny fixture models: a good set resolves; every way a set can
// be broken gives a ModelError that names the file at fault.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.js';
import { findHeadManifest, headReadsImage, readManifest, resolveModelSet, sha256File, type HeadManifest } from '../src/model/manifest.js';
import { tinyModelsCopy, tinyModelsDir } from './fixtures/tiny-models.js';

async function failure(p: Promise<unknown>): Promise<ModelError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  expect((err as Error).message.split('\n')).toHaveLength(1);
  return err as ModelError;
}

function editJson(path: string, edit: (m: Record<string, any>) => void): void {
  const m = JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
  edit(m);
  writeFileSync(path, JSON.stringify(m));
}

describe('model manifests', () => {
  it('resolves the head, the encoder it names, and the colour the encoder is fed', async () => {
    const dir = await tinyModelsDir();
    const set = await resolveModelSet(dir);
    expect(set.head.manifest.role).toBe('head');
    expect(set.head.modelPath).toBe(join(dir, 'head-tiny.onnx'));
    expect(set.encoder.modelPath).toBe(join(dir, 'encoder-tiny.onnx'));
    expect(set.encoder.manifest.inputs.image.color).toBe('rgb');
    expect(set.encoderColor).toBe('gray'); // the head's encoder.color overrides
    expect(set.encoder.manifest.sha256).toBe(await sha256File(set.encoder.modelPath));
  });

  it('refuses a model file whose sha256 differs from its manifest, naming it', async () => {
    const dir = await tinyModelsCopy();
    const head = join(dir, 'head-tiny.onnx');
    writeFileSync(head, Buffer.concat([readFileSync(head), Buffer.from([0])]));
    const err = await failure(resolveModelSet(dir));
    expect(err.code).toBe('CS_ERR_MODEL_MANIFEST');
    expect(err.modelPath).toBe(head);
    expect(err.message).toMatch(/sha256/);
    expect(err.message).toContain(head);
    rmSync(dir, { recursive: true });
  });

  it('refuses a head whose encoder.sha256 does not match the encoder file', async () => {
    const dir = await tinyModelsCopy();
    editJson(join(dir, 'head-tiny.onnx.json'), (m) => (m['encoder']['sha256'] = '0'.repeat(64)));
    const err = await failure(resolveModelSet(dir));
    expect(err.message).toContain(join(dir, 'encoder-tiny.onnx'));
    expect(err.message).toContain('head-tiny.onnx.json');
    rmSync(dir, { recursive: true });
  });

  it('names a model file that is missing', async () => {
    const dir = await tinyModelsCopy();
    rmSync(join(dir, 'encoder-tiny.onnx'));
    const err = await failure(resolveModelSet(dir));
    expect(err.code).toBe('CS_ERR_MODEL_LOAD');
    expect(err.message).toContain(join(dir, 'encoder-tiny.onnx'));
    rmSync(dir, { recursive: true });
  });

  /** An "int8 copy" of the tiny encoder: the same graph under another name, its manifest naming the float file. */
  function addInt8Copy(dir: string, from = 'encoder-tiny.onnx'): string {
    const copy = join(dir, 'encoder-tiny-int8.onnx');
    writeFileSync(copy, readFileSync(join(dir, 'encoder-tiny.onnx')));
    const m = JSON.parse(readFileSync(join(dir, 'encoder-tiny.onnx.json'), 'utf8')) as Record<string, any>;
    const sha = JSON.parse(readFileSync(join(dir, 'head-tiny.onnx.json'), 'utf8'))['encoder']['sha256'] as string;
    writeFileSync(`${copy}.json`, JSON.stringify({ ...m, name: 'tiny-int8', file: 'encoder-tiny-int8.onnx', quantized_from: { file: from, sha256: sha } }));
    return copy;
  }

  it('picks the int8 copy on the cpu and the float encoder on a GPU or when asked; each alone when only it is there', async () => {
    const dir = await tinyModelsCopy();
    const copy = addInt8Copy(dir);
    const float = join(dir, 'encoder-tiny.onnx');
    expect((await resolveModelSet(dir)).encoder.modelPath).toBe(copy);
    expect((await resolveModelSet(dir, 'auto', 'cpu')).precision).toBe('int8');
    expect((await resolveModelSet(dir, 'auto', 'cuda')).encoder.modelPath).toBe(float);
    expect((await resolveModelSet(dir, 'float')).precision).toBe('float');
    rmSync(float);
    expect((await resolveModelSet(dir, 'auto', 'cuda')).encoder.modelPath).toBe(copy);
    const err = await failure(resolveModelSet(dir, 'float'));
    expect(err.code).toBe('CS_ERR_MODEL_LOAD');
    expect(err.message).toContain(float);
    expect(err.message).toContain('trainer import-encoder');
    rmSync(dir, { recursive: true });
  });

  it('asked for int8, refuses a folder without a copy quantised from the head\'s encoder, naming quantize-encoder', async () => {
    const dir = await tinyModelsCopy();
    const err = await failure(resolveModelSet(dir, 'int8'));
    expect(err.code).toBe('CS_ERR_MODEL_LOAD');
    expect(err.message).toContain('quantize-encoder');
    // a copy of another encoder (its quantized_from names another sha256) is not taken for this head's
    const copy = addInt8Copy(dir);
    editJson(`${copy}.json`, (m) => (m['quantized_from']['sha256'] = 'f'.repeat(64)));
    expect((await resolveModelSet(dir)).precision).toBe('float');
    await failure(resolveModelSet(dir, 'int8'));
    // and a copy whose bytes changed after quantisation is refused, not run
    editJson(`${copy}.json`, (m) => (m['quantized_from']['sha256'] = JSON.parse(readFileSync(join(dir, 'head-tiny.onnx.json'), 'utf8'))['encoder']['sha256']));
    writeFileSync(copy, Buffer.concat([readFileSync(copy), Buffer.from([0])]));
    const tampered = await failure(resolveModelSet(dir));
    expect(tampered.code).toBe('CS_ERR_MODEL_MANIFEST');
    expect(tampered.message).toContain(copy);
    rmSync(dir, { recursive: true });
  });

  it('names a manifest that is not JSON', async () => {
    const dir = await tinyModelsCopy();
    const path = join(dir, 'head-tiny.onnx.json');
    writeFileSync(path, '{ "format": "cafe-stream-model/1", ');
    const err = await failure(readManifest(path));
    expect(err.code).toBe('CS_ERR_MODEL_MANIFEST');
    expect(err.modelPath).toBe(path);
    expect(err.message).toMatch(/not JSON/);
    rmSync(dir, { recursive: true });
  });

  it('names a manifest that breaks the format, and the field', async () => {
    const dir = await tinyModelsCopy();
    const path = join(dir, 'encoder-tiny.onnx.json');
    editJson(path, (m) => (m['inputs']['image']['layout'] = 'CHW'));
    const err = await failure(readManifest(path));
    expect(err.code).toBe('CS_ERR_MODEL_MANIFEST');
    expect(err.message).toContain(path);
    expect(err.message).toContain('inputs.image.layout');
    rmSync(dir, { recursive: true });
  });

  it('a one-channel image input is read as such, and must be gray', async () => {
    const dir = await tinyModelsCopy();
    const path = join(dir, 'encoder-tiny.onnx.json');
    expect((await readManifest(path)).manifest.inputs.image.channels).toBe(3); // absent: three
    editJson(path, (m) => Object.assign(m['inputs']['image'], { channels: 1, color: 'gray' }));
    expect((await readManifest(path)).manifest.inputs.image.channels).toBe(1);
    editJson(path, (m) => (m['inputs']['image']['color'] = 'rgb'));
    const err = await failure(readManifest(path));
    expect(err.message).toContain('one-channel image input must be gray');
    editJson(path, (m) => Object.assign(m['inputs']['image'], { channels: 2, color: 'gray' }));
    expect((await failure(readManifest(path))).message).toContain('inputs.image.channels');
    rmSync(dir, { recursive: true });
  });

  it('refuses a head whose classes are not in EXPRESSIONS order', async () => {
    const dir = await tinyModelsCopy();
    editJson(join(dir, 'head-tiny.onnx.json'), (m) => (m['output']['classes'] as string[]).reverse());
    // the manifest's own sha256 is of the .onnx, so editing the JSON keeps it valid
    const err = await failure(resolveModelSet(dir));
    expect(err.message).toMatch(/classes/);
    rmSync(dir, { recursive: true });
  });

  it('says which heads read their image input: not a mask from features, nor encoder + FC; any head that does not say does', async () => {
    const { manifest } = await findHeadManifest(await tinyModelsDir());
    const head = (over: Partial<HeadManifest>): HeadManifest => ({ ...manifest, variant: undefined, mask_source: undefined, ...over });
    expect(headReadsImage(head({}))).toBe(true);
    expect(headReadsImage(head({ variant: 'cafe', mask_source: 'features' }))).toBe(false);
    expect(headReadsImage(head({ variant: 'cafe-nosep', mask_source: 'features' }))).toBe(false);
    expect(headReadsImage(head({ variant: 'encoder-fc' }))).toBe(false);
    expect(headReadsImage(head({ variant: 'cafe', mask_source: 'image' }))).toBe(true);
    expect(headReadsImage(head({ variant: 'cafe', mask_source: 'both' }))).toBe(true);
    expect(headReadsImage(head({ variant: 'cafe' }))).toBe(true);
    expect(headReadsImage(head({ variant: 'resnet' }))).toBe(true);
  });

  it('needs exactly one head manifest in the models directory', async () => {
    const dir = await tinyModelsCopy();
    renameSync(join(dir, 'head-tiny.onnx.json'), join(dir, 'head-tiny.json.bak'));
    expect((await failure(findHeadManifest(dir))).message).toMatch(/exactly one head.*found none/);
    writeFileSync(join(dir, 'a.onnx.json'), readFileSync(join(dir, 'head-tiny.json.bak')));
    writeFileSync(join(dir, 'b.onnx.json'), readFileSync(join(dir, 'head-tiny.json.bak')));
    expect((await failure(findHeadManifest(dir))).message).toMatch(/found a\.onnx\.json, b\.onnx\.json/);
    rmSync(dir, { recursive: true });
    expect((await failure(findHeadManifest(dir))).message).toContain(dir);
  });
});
