// Every tunable of the pipeline in one schema: defaults, bounds and a description per field. The CLI and the
// live config parse user input through it once; code past that point trusts the typed result.
import { z } from 'zod';
import { ConfigError } from '../errors.js';

export const trackerOptionsSchema = z
  .object({
    maxLostSeconds: z.number().positive().default(1.0).describe('a track ends after this long unseen (media or wall seconds)'),
    minHits: z.number().int().min(1).default(2).describe('detections needed before a track is reported (1 = at once)'),
    minIoU: z.number().min(0).max(1).default(0.1).describe('a detection may join a track if IoU with its prediction reaches this …'),
    maxCentreDistance: z.number().positive().default(1.0).describe('… or if centres are closer than this many face sizes'),
    maxSizeRatio: z.number().min(1).default(2.0).describe('never join a track whose box side differs by more than this factor'),
    centreWeight: z.number().min(0).default(0.5).describe('weight of the centre distance against 1 − IoU in the cost'),
    velocityGain: z.number().min(0).max(1).default(0.5).describe('how fast the velocity estimate follows new measurements'),
    maxCoastSeconds: z.number().min(0).default(0.5).describe('velocity extrapolation stops after this long unseen'),
  })
  .strict();

export const detectionOptionsSchema = z
  .object({
    interval: z.number().int().min(1).max(60).default(1).describe('run the detector on every N-th frame; the tracker carries the boxes in between'),
    maxDrift: z.number().min(0).default(0.2).describe('detect early once a carried box has moved this many face sizes from its last detection'),
    motionLevel: z.number().min(0).max(255).default(14).describe('a cell of the motion grid changed if its mean grey level moved by more than this'),
    motionShare: z.number().min(0).max(1).default(0.01).describe('detect early when this share of the grid cells outside the faces changed (a face may have entered)'),
    scanSeconds: z
      .number()
      .min(0)
      .default(2)
      .describe('a tiling detector (--tile) scans the whole frame in tiles this often (stream seconds); in between it looks again only where a tracked face was not found. Without tiles, a frame goes to the detector alone at least this often (never in a mosaic shared with other streams), for new small faces'),
  })
  .strict();

/**
 * `analyze`'s default detection interval for files, chosen with bench/detect-interval.ts on the shared clips
 * (BENCHMARKS.md): the detector runs on a third of the frames or fewer and recall stays within a point of
 * detecting every frame. Live streams: LIVE_DETECT_INTERVAL.
 */
export const FILE_DETECT_INTERVAL = 3;

/**
 * The live default (`serve`, `watch`, `worker`: `pipeline.detection.interval`), chosen with bench/soak.ts
 * (BENCHMARKS.md): with the detector on every third frame and the shared frame bound at 8, eight 5 Hz cameras
 * are served in full on two cores (interval 1: capacity 6.5 cameras at the same bound). The tracker carries
 * the faces in between and detects early for a new face, drift, a face leaving or motion away from the faces.
 */
export const LIVE_DETECT_INTERVAL = 3;

export const smoothingOptionsSchema = z
  .object({
    tauSeconds: z.number().positive().default(0.15).describe('EMA time constant of the probabilities'),
    hysteresis: z.number().min(0).max(1).default(0.05).describe('a new label must lead the current one by this much'),
  })
  .strict();

export const timelineOptionsSchema = z
  .object({
    minSegmentSeconds: z.number().min(0).default(0.2).describe('shorter label runs are merged into a neighbour'),
    expressiveShare: z
      .number()
      .min(0)
      .max(1)
      .default(0.15)
      .describe("a track's dominant expression is its longest-held non-neutral one when that holds at least this share of the track's labelled time (1 = plain longest label)"),
  })
  .strict();

export const cropOptionsSchema = z
  .object({
    scale: z.number().min(1).max(3).default(1.3).describe('crop side = longer box side × scale (FER2013 framing ≈ 1.25–1.4)'),
  })
  .strict();

export const batchOptionsSchema = z
  .object({
    maxBatch: z.number().int().min(1).max(1024).default(16).describe('crops per inference call'),
    maxWaitMs: z.number().min(0).max(10_000).default(30).describe('a batch closes when its oldest crop waited this long'),
    maxInFlight: z.number().int().min(1).max(16).default(2).describe('inference calls running at once'),
    maxQueued: z.number().int().min(1).default(4096).describe('hard cap on waiting crops (an invariant: sources pause long before)'),
  })
  .strict();

/**
 * Default of `reuse.maxChange`, chosen with bench/reuse.ts on the 33 shared clips at 10 Hz and the 16-face grid
 * (BENCHMARKS.md): at 2 the model skips 17.3 % of the crops of these talking faces (more on still ones), 99.94 %
 * of the observations keep the label of reading every crop and every track its dominant expression; at 3, 24.8 %,
 * but one track of 49 changes its dominant expression.
 */
export const REUSE_MAX_CHANGE = 2;

export const reuseOptionsSchema = z
  .object({
    maxChange: z
      .number()
      .min(0)
      .max(255)
      .default(REUSE_MAX_CHANGE)
      .describe("carry a track's last probabilities forward while its crop differs from the last one read by at most this mean grey level (16×16, brightness removed); 0 reads every crop"),
    maxAgeSeconds: z.number().positive().default(1).describe('a track is read at least this often, changed or not'),
  })
  .strict();

export const pipelineOptionsSchema = z
  .object({
    tracker: trackerOptionsSchema.default({}),
    detection: detectionOptionsSchema.default({}),
    smoothing: smoothingOptionsSchema.default({}),
    timeline: timelineOptionsSchema.default({}),
    crop: cropOptionsSchema.default({}),
    batch: batchOptionsSchema.default({}),
    reuse: reuseOptionsSchema.default({}),
  })
  .strict();

export type TrackerOptions = z.infer<typeof trackerOptionsSchema>;
export type DetectionOptions = z.infer<typeof detectionOptionsSchema>;
export type SmoothingOptions = z.infer<typeof smoothingOptionsSchema>;
export type TimelineOptions = z.infer<typeof timelineOptionsSchema>;
export type CropOptions = z.infer<typeof cropOptionsSchema>;
export type BatchOptions = z.infer<typeof batchOptionsSchema>;
export type ReuseOptions = z.infer<typeof reuseOptionsSchema>;
export type PipelineOptions = z.infer<typeof pipelineOptionsSchema>;
export type PipelineOptionsInput = z.input<typeof pipelineOptionsSchema>;

/** Defaults merged in, bounds checked; the first bad key becomes a ConfigError naming it. */
export function resolvePipelineOptions(input: PipelineOptionsInput = {}): PipelineOptions {
  const parsed = pipelineOptionsSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const key = issue?.path.join('.') || '(root)';
  throw new ConfigError(key, `invalid pipeline option ${key}: ${issue?.message ?? 'invalid'}`);
}
