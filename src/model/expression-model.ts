// The model stage: the fixed image encoder (the "CLIP slot") and the CAFE head, two onnxruntime sessions run
// back to back on a batch of face crops. Everything about their inputs comes from the manifests
// (docs/models.md); the encoder is fed in the colour the head was trained with (`encoder.color`).

import { InferenceError, ModelError, errorLine } from '../errors.js';
import { EXPRESSIONS, type Expression, type FaceCrop } from '../types.js';
import { headReadsImage, resolveModelSet, type EncoderPrecision, type LocatedManifest, type ModelSet, type Precision } from './manifest.js';
import { ort, createSession, withProvider, type Device, type Provider } from './onnx-runtime.js';
import { ImagePreprocessor } from './preprocess.js';

export interface ExpressionModelOptions {
  /** folder holding exactly one head manifest and the encoder it names. */
  modelsDir: string;
  /** default 'auto': a GPU provider that works, else cpu. */
  device?: Device;
  /** intra-op threads per session; default on cpu: CPU_INTRA_OP_THREADS; on a GPU: onnxruntime's. */
  threads?: number;
  /** which encoder copy runs; default 'auto': the int8 copy on the CPU, the float encoder on a GPU. */
  precision?: Precision;
  /** receives one line saying which models run on which provider (and which providers failed). */
  log?: (line: string) => void;
}

export interface ExpressionModel {
  readonly classes: readonly Expression[];
  /** side the square crops should have: the largest of the two models' inputs, so neither is upscaled. */
  readonly cropSize: number;
  /** the execution provider that runs both models: 'cpu' | 'cuda' | 'webgpu'. */
  readonly provider: string;
  /** which encoder runs: 'float' (the one the head was trained on) or 'int8' (quantised from it). */
  readonly precision: EncoderPrecision;
  /** per crop, probabilities in EXPRESSIONS order; one batched run of each model for the whole call. */
  infer(crops: FaceCrop[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}

export async function loadExpressionModel(opts: ExpressionModelOptions): Promise<ExpressionModel> {
  // Resolved per provider: which encoder copy runs depends on where it runs.
  const choice = await withProvider(opts.device ?? 'auto', async (provider) => {
    const set = await resolveModelSet(opts.modelsDir, opts.precision ?? 'auto', provider);
    return { set, sessions: await openSessions(set, provider, opts.threads) };
  });
  const { set, sessions } = choice.value;
  const model = new OnnxExpressionModel(set, choice.provider, sessions);
  const failed = choice.failed.map((f) => `${f.provider}: ${f.error}`).join('; ');
  opts.log?.(
    `expression model ${set.head.manifest.name} + encoder ${set.encoder.manifest.name} (${set.precision}) on ${choice.provider}` +
      `${failed ? ` (not available: ${failed})` : ''}`,
  );
  return model;
}

interface Sessions {
  encoder: ort.InferenceSession;
  head: ort.InferenceSession;
}

/**
 * The model on the calling thread (evaluate, and the benches' `--model-threads 0`; the pipeline's CPU model stage
 * runs on model threads instead, model-threads.ts): two intra-op threads, which do not spin (sessionOptions).
 * While the detector ran on tfjs-wasm (a call ~40 ms) it needed a core of its own and the model stage had one
 * thread (bench/overlap.ts). On onnxruntime a detector call is ~5 ms, so the second thread finds a core free
 * most of the time: model stage ×1.9 (BENCHMARKS.md, 2026-12-07). onnxruntime's default pool spins while it
 * waits for work, and a spinning thread takes the core the detector and ffmpeg need.
 */
export const CPU_INTRA_OP_THREADS = 2;

async function openSessions(set: ModelSet, provider: Provider, requested: number | undefined): Promise<Sessions> {
  const threads = requested ?? (provider === 'cpu' ? CPU_INTRA_OP_THREADS : undefined);
  const encoder = await openSession(set.encoder, provider, threads);
  let head: ort.InferenceSession;
  try {
    head = await openSession(set.head, provider, threads);
  } catch (err) {
    await encoder.release();
    throw err;
  }
  const sessions = { encoder, head };
  try {
    // One real run: a GPU provider can create a session and still fail when it executes.
    const probe = new Pipeline(set);
    await probe.run(sessions, [{ size: probe.cropSize, rgb: new Uint8Array(probe.cropSize * probe.cropSize * 3) }]);
  } catch (err) {
    await Promise.all([encoder.release(), head.release()]);
    throw new ModelError('CS_ERR_MODEL_LOAD', set.head.modelPath, `models do not run on ${provider}: ${errorLine(err)}`, { cause: err });
  }
  return sessions;
}

async function openSession(m: LocatedManifest, provider: Provider, threads: number | undefined): Promise<ort.InferenceSession> {
  let session: ort.InferenceSession;
  try {
    session = await createSession(m.modelPath, provider, threads);
  } catch (err) {
    throw new ModelError('CS_ERR_MODEL_LOAD', m.modelPath, `model did not load: ${m.modelPath} on ${provider} (${errorLine(err)})`, { cause: err });
  }
  const wantIn = Object.values(m.manifest.inputs).map((i) => i.name);
  const missing = [...wantIn.filter((n) => !session.inputNames.includes(n)), ...(session.outputNames.includes(m.manifest.output.name) ? [] : [m.manifest.output.name])];
  if (missing.length > 0) {
    await session.release();
    throw new ModelError(
      'CS_ERR_MODEL_MANIFEST',
      m.manifestPath,
      `${m.modelPath} has no ${missing.join(', ')} named in ${m.manifestPath} (inputs ${session.inputNames.join(', ')}; outputs ${session.outputNames.join(', ')})`,
    );
  }
  return session;
}

/** Preprocessing buffers for one in-flight call, plus the run itself. */
class Pipeline {
  readonly cropSize: number;
  readonly #set: ModelSet;
  readonly #encoderInput: ImagePreprocessor;
  readonly #headInput: ImagePreprocessor;
  /** the head ignores its image (times zero): it gets these zeros, grown as batches grow. */
  readonly #headImageUnused: boolean;
  #zeros = new Float32Array(0);

  constructor(set: ModelSet) {
    this.#set = set;
    const e = set.encoder.manifest.inputs.image;
    const h = set.head.manifest.inputs.image;
    this.cropSize = Math.max(e.width, e.height, h.width, h.height);
    this.#encoderInput = new ImagePreprocessor(e, set.encoderColor);
    this.#headInput = new ImagePreprocessor(h);
    this.#headImageUnused = !headReadsImage(set.head.manifest);
  }

  #headImage(crops: readonly { size: number; rgb: Uint8Array }[]): ort.Tensor {
    if (!this.#headImageUnused) return tensorFor(this.#headInput, crops);
    const need = crops.length * this.#headInput.itemLength;
    if (this.#zeros.length < need) this.#zeros = new Float32Array(need);
    return tensorFor(this.#headInput, crops, this.#zeros.subarray(0, need));
  }

  async run(s: Sessions, crops: readonly { size: number; rgb: Uint8Array }[]): Promise<Float32Array[]> {
    const n = crops.length;
    const e = this.#set.encoder.manifest;
    const h = this.#set.head.manifest;
    const encIn = tensorFor(this.#encoderInput, crops);
    const encOut = await s.encoder.run({ [e.inputs.image.name]: encIn });
    const features = encOut[e.output.name];
    if (!features || features.dims.length !== 2 || features.dims[0] !== n || features.dims[1] !== h.inputs.features.dim) {
      throw new Error(`encoder output ${e.output.name} has shape [${features?.dims.join(', ')}], expected [${n}, ${h.inputs.features.dim}]`);
    }
    const headIn = this.#headImage(crops);
    const headOut = await s.head.run({ [h.inputs.image.name]: headIn, [h.inputs.features.name]: features });
    const probs = headOut[h.output.name];
    const k = EXPRESSIONS.length;
    if (!probs || probs.dims.length !== 2 || probs.dims[0] !== n || probs.dims[1] !== k) {
      throw new Error(`head output ${h.output.name} has shape [${probs?.dims.join(', ')}], expected [${n}, ${k}]`);
    }
    const data = probs.data as Float32Array;
    const out: Float32Array[] = [];
    for (let i = 0; i < n; i++) out.push(data.slice(i * k, (i + 1) * k));
    for (const t of [...Object.values(encOut), ...Object.values(headOut)]) t.dispose();
    return out;
  }
}

function tensorFor(pre: ImagePreprocessor, crops: readonly { size: number; rgb: Uint8Array }[], data?: Float32Array): ort.Tensor {
  const { height, width, layout } = pre.spec;
  const c = pre.outChannels;
  const dims = layout === 'NCHW' ? [crops.length, c, height, width] : [crops.length, height, width, c];
  return new ort.Tensor('float32', data ?? pre.batch(crops), dims);
}

class OnnxExpressionModel implements ExpressionModel {
  readonly classes: readonly Expression[] = EXPRESSIONS;
  readonly cropSize: number;
  readonly provider: string;
  readonly precision: EncoderPrecision;
  readonly #set: ModelSet;
  readonly #sessions: Sessions;
  /** idle preprocessing buffers; concurrent calls each take one, so batches can overlap without copying. */
  readonly #idle: Pipeline[] = [];
  #closed = false;

  constructor(set: ModelSet, provider: Provider, sessions: Sessions) {
    this.#set = set;
    this.provider = provider;
    this.precision = set.precision;
    this.#sessions = sessions;
    const first = new Pipeline(set);
    this.cropSize = first.cropSize;
    this.#idle.push(first);
  }

  async infer(crops: FaceCrop[]): Promise<Float32Array[]> {
    if (this.#closed) throw new InferenceError(`expression model ${this.#set.head.manifest.name} is closed`);
    if (crops.length === 0) return [];
    const pipeline = this.#idle.pop() ?? new Pipeline(this.#set);
    try {
      return await pipeline.run(this.#sessions, crops);
    } catch (err) {
      throw new InferenceError(`inference failed on ${crops.length} crops (${this.#set.head.manifest.file} on ${this.provider}): ${errorLine(err)}`, {
        cause: err,
      });
    } finally {
      this.#idle.push(pipeline);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#sessions.encoder.release(), this.#sessions.head.release()]);
  }
}
