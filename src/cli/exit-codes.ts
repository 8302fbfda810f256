// Process exit codes, one per class of failure, so scripts can branch without parsing stderr.
// Documented in the README; never renumber.
import { CafeStreamError, type ErrorCode } from '../errors.js';

export const EXIT = {
  ok: 0,
  /** a bug or an error the product does not classify. */
  internal: 1,
  /** bad command line or config (CS_ERR_CONFIG). */
  usage: 2,
  /** the input file does not exist (CS_ERR_INPUT_MISSING). */
  inputMissing: 3,
  /** the input is not a video (CS_ERR_NOT_A_VIDEO). */
  notAVideo: 4,
  /** the video is truncated or ffmpeg failed decoding it (CS_ERR_TRUNCATED, CS_ERR_FFMPEG_EXIT, CS_ERR_STREAM_STALLED). */
  decode: 5,
  /** a model did not load (CS_ERR_MODEL_LOAD, CS_ERR_MODEL_MANIFEST). */
  model: 6,
  /** detection or inference failed while running (CS_ERR_DETECTOR, CS_ERR_INFERENCE). */
  runtime: 7,
  /** a sink could not take events, or events read back were invalid (CS_ERR_SINK, CS_ERR_RETRIES_EXCEEDED, CS_ERR_INVALID_EVENT). */
  sink: 8,
  /** stopped by SIGINT/SIGTERM; everything written is valid and every stream has its stream.end. */
  interrupted: 130,
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  CS_ERR_CONFIG: EXIT.usage,
  CS_ERR_INPUT_MISSING: EXIT.inputMissing,
  CS_ERR_NOT_A_VIDEO: EXIT.notAVideo,
  CS_ERR_TRUNCATED: EXIT.decode,
  CS_ERR_FFMPEG_EXIT: EXIT.decode,
  CS_ERR_STREAM_STALLED: EXIT.decode,
  CS_ERR_MODEL_LOAD: EXIT.model,
  CS_ERR_MODEL_MANIFEST: EXIT.model,
  CS_ERR_DETECTOR: EXIT.runtime,
  CS_ERR_INFERENCE: EXIT.runtime,
  CS_ERR_SINK: EXIT.sink,
  CS_ERR_RETRIES_EXCEEDED: EXIT.sink,
  CS_ERR_INVALID_EVENT: EXIT.sink,
};

export function exitCodeFor(err: unknown): number {
  if (err instanceof CafeStreamError) return BY_CODE[err.code] ?? EXIT.internal;
  return EXIT.internal;
}
