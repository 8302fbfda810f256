// The `serve` configuration (cameras.yaml): one strict schema, parsed once at the edge. Unknown keys are
// errors (a typo must not silently fall back to a default), every field has a default or is required, numbers
// have bounds, and the first problem becomes a ConfigError naming its key path, e.g. "streams.1.sampleFps".
// Reference with an example: docs/live.md; examples/cameras.yaml.
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { MAX_MODEL_THREADS } from './model/model-thread-count.js';
import { kafkaSaslSchema, kafkaTlsSchema } from './kafka/security.js';
import { LIVE_DETECT_INTERVAL, batchOptionsSchema, detectionOptionsSchema, pipelineOptionsSchema, type PipelineOptions } from './pipeline/options.js';

const STREAM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const streamConfigSchema = z
  .object({
    id: z.string().regex(STREAM_ID, 'letters, digits, ".", "_" or "-", at most 64, starting with a letter or digit').describe('stream id in events and metrics'),
    url: z
      .string()
      .regex(/^rtsps?:\/\/\S+$/i, 'an rtsp:// or rtsps:// URL')
      .describe('camera URL; credentials in it are never logged'),
    transport: z.enum(['tcp', 'udp']).default('tcp').describe('RTSP transport; tcp survives lossy networks and NAT'),
    sampleFps: z.number().positive().max(120).optional().describe('analyse at most this many frames per second'),
    maxWidth: z.number().int().min(64).max(7680).optional().describe('scale frames down to this width before analysis'),
    stallSeconds: z.number().min(0.5).max(300).default(5).describe('no frame for this long on an open connection → reconnect'),
    enabled: z.boolean().default(true).describe('false keeps the entry but does not connect'),
  })
  .strict();

const sinksSchema = z
  .object({
    jsonl: z
      .object({
        path: z.string().min(1).describe('file to append events to; "-" for stdout'),
      })
      .strict()
      .optional(),
    kafka: z
      .object({
        brokers: z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'host:port')).min(1).describe('bootstrap brokers'),
        topic: z.string().min(1).default('cafe-stream.events') /* = kafka-sink's DEFAULT_KAFKA_TOPIC; not imported so config stays free of kafkajs */.describe('topic for every event'),
        tls: kafkaTlsSchema.optional().describe('TLS to the brokers (default: CAFE_STREAM_KAFKA_TLS* in the environment)'),
        sasl: kafkaSaslSchema.optional().describe('SASL PLAIN / SCRAM (default: CAFE_STREAM_KAFKA_SASL_* in the environment)'),
      })
      .strict()
      .optional(),
    ws: z
      .object({
        path: z.string().startsWith('/').default('/ws').describe('WebSocket path on the HTTP server'),
        token: z.string().min(1).optional().describe('shared token clients must present'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .default({});

const httpSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('bind address; 0.0.0.0 exposes metrics and control to the network'),
    port: z.number().int().min(0).max(65535).default(8080).describe('0 picks a free port (printed at start)'),
    staticDir: z.string().min(1).optional().describe('serve "/" and "/assets/*" from this folder (the dashboard)'),
    control: z.boolean().default(true).describe('allow POST /streams and DELETE /streams/:id'),
  })
  .strict()
  .default({});

const reconnectSchema = z
  .object({
    initialDelayMs: z.number().int().min(0).max(60_000).default(500),
    maxDelayMs: z.number().int().min(0).max(300_000).default(4000).describe('cap on one wait; keeps recovery fast once a camera returns'),
    factor: z.number().min(1).max(10).default(2),
    jitter: z.number().min(0).max(1).default(0.3),
  })
  .strict()
  .default({});

export const liveConfigSchema = z
  .object({
    streams: z.array(streamConfigSchema).max(256).default([]),
    device: z.enum(['cpu', 'cuda', 'webgpu', 'auto']).default('cpu').describe('execution provider for the models'),
    precision: z.enum(['auto', 'float', 'int8']).default('auto').describe('encoder copy: auto (int8 on the CPU, float on a GPU), int8 or float'),
    models: z.string().min(1).default('models').describe('folder with the encoder and CAFE head (see docs/models.md)'),
    modelThreads: z
      .number()
      .int()
      .min(0)
      .max(MAX_MODEL_THREADS)
      .optional()
      .describe('on the CPU: threads that read batches, each with its own session (default min(2, cores)); 0: on the main thread, ~150 MB less'),
    detector: z
      .object({
        model: z.enum(['full', 'short']).default('full').describe("MediaPipe's full-range (192 px, faces to ~5 m) or short-range (128 px) detector"),
        runtime: z.enum(['onnx', 'tfjs']).default('onnx').describe("the same weights on onnxruntime (default, ~5× faster per call) or on tfjs-wasm through @tensorflow-models/face-detection"),
        tile: z.boolean().default(false).describe('small faces in wide frames (a classroom, a meeting room): tile scans every detection.scanSeconds and looks again around tracked faces'),
        mosaic: z
          .boolean()
          .default(true)
          .describe('cameras whose frames wait for the detector together share one call (a 2×2 mosaic) while their tracked faces are large; off with tile'),
      })
      .strict()
      .default({})
      .describe('the face detector every camera shares'),
    batching: batchOptionsSchema.default({}).describe('the shared model stage: crops per call, deadline, calls in flight'),
    pipeline: pipelineOptionsSchema
      .omit({ batch: true })
      .extend({ detection: detectionOptionsSchema.extend({ interval: detectionOptionsSchema.shape.interval.removeDefault().default(LIVE_DETECT_INTERVAL) }).default({}) })
      .default({})
      .describe('tracker, detection, smoothing, timeline, crop'),
    sinks: sinksSchema,
    http: httpSchema,
    reconnect: reconnectSchema,
    shutdownSeconds: z.number().min(1).max(120).default(10).describe('graceful shutdown bound; then forced exit'),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const seen = new Map<string, number>();
    cfg.streams.forEach((s, i) => {
      const prev = seen.get(s.id);
      if (prev !== undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['streams', i, 'id'], message: `duplicate stream id "${s.id}" (also streams.${prev}.id)` });
      }
      seen.set(s.id, i);
    });
    if (cfg.reconnect.maxDelayMs < cfg.reconnect.initialDelayMs) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['reconnect', 'maxDelayMs'], message: 'must be >= reconnect.initialDelayMs' });
    }
  });

export type StreamConfig = z.infer<typeof streamConfigSchema>;
export type StreamConfigInput = z.input<typeof streamConfigSchema>;
export type LiveConfig = z.infer<typeof liveConfigSchema>;
export type LiveConfigInput = z.input<typeof liveConfigSchema>;

/** The first zod issue as a ConfigError whose `key` is the dotted path of the offending key. */
function toConfigError(error: z.ZodError, where: string): ConfigError {
  const issue = error.issues[0];
  if (issue === undefined) return new ConfigError('(root)', `${where}: invalid`);
  let path = issue.path.map(String);
  let message = issue.message;
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    // name the unknown key itself, not the object that holds it
    path = [...path, issue.keys[0] ?? '?'];
    message = 'unknown key';
  }
  const key = path.length === 0 ? '(root)' : path.join('.');
  return new ConfigError(key, `${where}: ${key}: ${message}`);
}

/** Validate a parsed config object; defaults filled in. */
export function parseLiveConfig(input: unknown, where = 'config'): LiveConfig {
  const parsed = liveConfigSchema.safeParse(input ?? {});
  if (!parsed.success) throw toConfigError(parsed.error, where);
  return parsed.data;
}

/** Validate one stream entry (the POST /streams body). */
export function parseStreamConfig(input: unknown, where = 'stream'): StreamConfig {
  const parsed = streamConfigSchema.safeParse(input);
  if (!parsed.success) throw toConfigError(parsed.error, where);
  return parsed.data;
}

/** Read and validate a YAML config file. YAML syntax errors name the line. */
export async function loadLiveConfig(path: string): Promise<LiveConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError('(file)', `cannot read config ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const line = first.linePos?.[0]?.line;
    throw new ConfigError('(file)', `${path}${line === undefined ? '' : `:${line}`}: YAML: ${first.message.split('\n')[0]}`);
  }
  return parseLiveConfig(doc.toJS(), path);
}

/** The config's pipeline sections as the pipeline's own options. */
export function pipelineOptionsOf(cfg: LiveConfig): PipelineOptions {
  return { ...cfg.pipeline, batch: cfg.batching };
}
