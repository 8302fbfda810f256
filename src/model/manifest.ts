// The `cafe-stream-model/1` sidecar manifests (docs/models.md): read, validate, and resolve a models directory
// into the encoder + head pair the model stage runs, with every file checked against its sha256.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { ModelError } from '../errors.js';
import { EXPRESSIONS } from '../types.js';

export const MANIFEST_FORMAT = 'cafe-stream-model/1';

const finite = z.number().finite();
const positiveInt = z.number().int().positive();
const color = z.enum(['rgb', 'gray']);

export const ImageInputSchema = z
  .object({
    name: z.string().min(1),
    layout: z.enum(['NCHW', 'NHWC']),
    height: positiveInt,
    width: positiveInt,
    color,
    /** 1: a grey input folded to one channel (`trainer fold-grey-input`); channel 0's mean and std apply. */
    channels: z.union([z.literal(1), z.literal(3)]).default(3),
    mean: z.tuple([finite, finite, finite]),
    std: z.tuple([finite.positive(), finite.positive(), finite.positive()]),
    resize: z.literal('bilinear'),
  })
  .refine((i) => i.channels === 3 || i.color === 'gray', { message: 'a one-channel image input must be gray', path: ['color'] });
export type ImageInputSpec = z.infer<typeof ImageInputSchema>;
export type ColorMode = z.infer<typeof color>;

const common = {
  format: z.literal(MANIFEST_FORMAT),
  name: z.string().min(1),
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  opset: positiveInt,
  source: z.string(),
};

// Unknown keys are allowed (and dropped): a newer trainer may add fields an older loader does not need.
export const EncoderManifestSchema = z.object({
  ...common,
  role: z.literal('encoder'),
  inputs: z.object({ image: ImageInputSchema }),
  output: z.object({ name: z.string().min(1), dim: positiveInt }),
  /** an int8 copy names the float encoder it was quantised from (`trainer quantize-encoder`). */
  quantized_from: z.object({ file: z.string().min(1), sha256: common.sha256 }).optional(),
});

export const HeadManifestSchema = z.object({
  ...common,
  role: z.literal('head'),
  inputs: z.object({
    image: ImageInputSchema,
    features: z.object({ name: z.string().min(1), dim: positiveInt }),
  }),
  output: z.object({ name: z.string().min(1), classes: z.array(z.string()).min(2) }),
  encoder: z.object({ file: z.string().min(1), sha256: common.sha256, color: color.optional() }),
  metrics: z.record(z.number()).optional(),
  /** the trainer's head variant and where its mask reads from (`trainer export-head`); older heads lack them. */
  variant: z.string().optional(),
  mask_source: z.enum(['image', 'features', 'both']).optional(),
});

export const ModelManifestSchema = z.discriminatedUnion('role', [EncoderManifestSchema, HeadManifestSchema]);
export type EncoderManifest = z.infer<typeof EncoderManifestSchema>;
export type HeadManifest = z.infer<typeof HeadManifestSchema>;

/**
 * Whether the head's output depends on its `image` input. A head whose mask reads the encoder's features (or
 * an encoder + FC head) keeps the input only for the interface and multiplies it by zero (trainer
 * `ExportHead`), so feeding zeros gives the same probabilities and spares resizing every crop a second time.
 * A manifest that does not say is taken to read it.
 */
export function headReadsImage(h: HeadManifest): boolean {
  if (h.variant === undefined) return true;
  if (h.variant === 'encoder-fc') return false;
  return !(h.variant.startsWith('cafe') && h.mask_source === 'features');
}
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

/** A manifest together with where it and its model file are. */
export interface LocatedManifest<M extends ModelManifest = ModelManifest> {
  manifestPath: string;
  /** absolute path of the .onnx file it describes. */
  modelPath: string;
  manifest: M;
}

export interface ModelSet {
  head: LocatedManifest<HeadManifest>;
  encoder: LocatedManifest<EncoderManifest>;
  /** the colour the encoder must be fed: the head's `encoder.color`, else the encoder's own. */
  encoderColor: ColorMode;
  /** 'float': the encoder the head names; 'int8': a copy quantised from exactly that file. */
  precision: EncoderPrecision;
}

export const PRECISIONS = ['auto', 'float', 'int8'] as const;
/** 'auto': int8 on the CPU when the models folder has it (1.6x the crops per second, 99 % the same label),
 * the float encoder on a GPU when it is there. */
export type Precision = (typeof PRECISIONS)[number];
export type EncoderPrecision = Exclude<Precision, 'auto'>;

export async function readManifest(manifestPath: string): Promise<LocatedManifest> {
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', manifestPath, `model manifest not readable: ${manifestPath} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', manifestPath, `model manifest is not JSON: ${manifestPath} (${(err as Error).message})`, { cause: err });
  }
  const parsed = ModelManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw new ModelError('CS_ERR_MODEL_MANIFEST', manifestPath, `invalid model manifest: ${manifestPath} (${where}: ${issue?.message ?? 'invalid'})`, {
      cause: parsed.error,
    });
  }
  return { manifestPath, modelPath: resolve(dirname(manifestPath), parsed.data.file), manifest: parsed.data };
}

/** The one `role: head` manifest (`*.onnx.json`) in a models directory. */
export async function findHeadManifest(modelsDir: string): Promise<LocatedManifest<HeadManifest>> {
  let names: string[];
  try {
    names = (await readdir(modelsDir)).filter((n) => n.endsWith('.onnx.json')).sort();
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', modelsDir, `models directory not readable: ${modelsDir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
      cause: err,
    });
  }
  const heads: LocatedManifest<HeadManifest>[] = [];
  for (const name of names) {
    const located = await readManifest(join(modelsDir, name));
    if (located.manifest.role === 'head') heads.push(located as LocatedManifest<HeadManifest>);
  }
  if (heads.length !== 1) {
    const found = heads.length === 0 ? 'none' : heads.map((h) => basename(h.manifestPath)).join(', ');
    throw new ModelError('CS_ERR_MODEL_MANIFEST', modelsDir, `expected exactly one head manifest (*.onnx.json, role "head") in ${modelsDir}, found ${found}`);
  }
  return heads[0]!;
}

/**
 * A models directory → its head and the encoder the head names, each file verified against its manifest's
 * sha256 and the head's `encoder.sha256`, the class order checked against EXPRESSIONS and the feature
 * width checked between the two.
 */
export async function resolveModelSet(modelsDir: string, precision: Precision = 'auto', provider = 'cpu'): Promise<ModelSet> {
  const head = await findHeadManifest(modelsDir);
  await verifyModelFile(head.modelPath, head.manifest.sha256, head.manifestPath);
  const h = head.manifest;
  if (h.output.classes.length !== EXPRESSIONS.length || h.output.classes.some((c, i) => c !== EXPRESSIONS[i])) {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', head.manifestPath, `head classes [${h.output.classes.join(', ')}] are not [${EXPRESSIONS.join(', ')}] in ${head.manifestPath}`);
  }

  const floatPath = resolve(dirname(head.manifestPath), h.encoder.file);
  const order: EncoderPrecision[] = precision !== 'auto' ? [precision] : provider === 'cpu' ? ['int8', 'float'] : ['float', 'int8'];
  let encoder: LocatedManifest<EncoderManifest> | undefined;
  let chosen: EncoderPrecision | undefined;
  for (const [i, p] of order.entries()) {
    const last = i === order.length - 1;
    // The last choice must exist (its error says how to build it); an earlier one may be absent.
    if (p === 'float' && (last || (await isFile(floatPath)))) encoder = await floatEncoder(head, floatPath);
    if (p === 'int8') encoder = await int8Encoder(head, floatPath, last);
    if (encoder) {
      chosen = p;
      break;
    }
  }
  if (!encoder || !chosen) {
    // Unreachable in practice (the last choice throws when absent); kept so the types need no assertion.
    throw new ModelError('CS_ERR_MODEL_LOAD', floatPath, `no encoder for ${head.manifestPath}: neither ${floatPath} nor an int8 copy quantised from it (trainer import-encoder / quantize-encoder)`);
  }
  const e = encoder.manifest;
  if (e.output.dim !== h.inputs.features.dim) {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', head.manifestPath, `head expects ${h.inputs.features.dim}-d features but encoder ${e.file} gives ${e.output.dim}-d (${head.manifestPath})`);
  }
  return { head, encoder, encoderColor: h.encoder.color ?? e.inputs.image.color, precision: chosen };
}

/** The encoder the head names, verified against the head's sha256 and its own manifest. */
async function floatEncoder(head: LocatedManifest<HeadManifest>, encoderPath: string): Promise<LocatedManifest<EncoderManifest>> {
  const encoderSha = await verifyModelFile(encoderPath, head.manifest.encoder.sha256, head.manifestPath).catch((err: unknown) => {
    if (err instanceof ModelError && err.code === 'CS_ERR_MODEL_LOAD') {
      // The float encoder is not shipped (the int8 copy is); say how to build it.
      throw new ModelError('CS_ERR_MODEL_LOAD', encoderPath, `${err.message}; models/ ships only the int8 copy: scripts/setup-trainer.sh builds the float encoder with the head into .cache/models-float (\`trainer import-encoder\`), then --models .cache/models-float`, { cause: err });
    }
    throw err;
  });
  const encoder = await readManifest(`${encoderPath}.json`);
  if (encoder.manifest.role !== 'encoder') {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', encoder.manifestPath, `${encoder.manifestPath} describes a ${encoder.manifest.role}, but ${head.manifestPath} names it as its encoder`);
  }
  if (encoder.manifest.sha256 !== encoderSha) {
    throw new ModelError('CS_ERR_MODEL_MANIFEST', encoder.manifestPath, `sha256 of ${encoderPath} does not match its manifest ${encoder.manifestPath}`);
  }
  return encoder as LocatedManifest<EncoderManifest>;
}

/** The encoder manifest beside the head whose `quantized_from.sha256` is the head's encoder, verified; absent: undefined, or an error when `required`. */
async function int8Encoder(head: LocatedManifest<HeadManifest>, floatPath: string, required: boolean): Promise<LocatedManifest<EncoderManifest> | undefined> {
  const dir = dirname(head.manifestPath);
  const names = (await readdir(dir)).filter((n) => n.endsWith('.onnx.json')).sort();
  for (const name of names) {
    const m = await readManifest(join(dir, name));
    if (m.manifest.role !== 'encoder' || m.manifest.quantized_from?.sha256 !== head.manifest.encoder.sha256) continue;
    await verifyModelFile(m.modelPath, m.manifest.sha256, m.manifestPath);
    return m as LocatedManifest<EncoderManifest>;
  }
  if (required) {
    throw new ModelError('CS_ERR_MODEL_LOAD', dir, `no int8 encoder in ${dir} quantised from ${basename(floatPath)} (sha256 ${head.manifest.encoder.sha256.slice(0, 12)}…); build one with \`trainer quantize-encoder\``);
  }
  return undefined;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Checks the file exists and has the expected sha256; returns the digest. */
export async function verifyModelFile(modelPath: string, expectedSha256: string, namedBy: string): Promise<string> {
  try {
    const s = await stat(modelPath);
    if (!s.isFile()) throw new Error('not a file');
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_LOAD', modelPath, `model file missing: ${modelPath} (named by ${namedBy})`, { cause: err });
  }
  const actual = await sha256File(modelPath);
  if (actual !== expectedSha256) {
    throw new ModelError(
      'CS_ERR_MODEL_MANIFEST',
      modelPath,
      `sha256 mismatch: ${modelPath} is ${actual.slice(0, 12)}…, ${namedBy} expects ${expectedSha256.slice(0, 12)}…`,
    );
  }
  return actual;
}

/** Read in 1 MiB chunks: with the stream's default 64 KiB, a model thread's two files took ~45 ms, against ~12. */
const HASH_CHUNK = 1 << 20;

export function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: HASH_CHUNK })
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolvePromise(hash.digest('hex')));
  });
}
