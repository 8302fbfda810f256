// Every error the product raises on purpose, in one file. Callers branch on `code` or `instanceof`,
// never on message text; `message` is the one line a user sees.

export type ErrorCode =
  | 'CS_ERR_INPUT_MISSING'
  | 'CS_ERR_NOT_A_VIDEO'
  | 'CS_ERR_TRUNCATED'
  | 'CS_ERR_FFMPEG_EXIT'
  | 'CS_ERR_STREAM_STALLED'
  | 'CS_ERR_MODEL_LOAD'
  | 'CS_ERR_MODEL_MANIFEST'
  | 'CS_ERR_INFERENCE'
  | 'CS_ERR_DETECTOR'
  | 'CS_ERR_SINK'
  | 'CS_ERR_CONFIG'
  | 'CS_ERR_RETRIES_EXCEEDED'
  | 'CS_ERR_INVALID_EVENT';

export class CafeStreamError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

export class IngestError extends CafeStreamError {
  readonly source: string;
  constructor(code: ErrorCode, source: string, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(code, message, options);
    this.source = source;
  }
}

export class ModelError extends CafeStreamError {
  readonly modelPath: string;
  constructor(code: ErrorCode, modelPath: string, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.modelPath = modelPath;
  }
}

export class InferenceError extends CafeStreamError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super('CS_ERR_INFERENCE', message, options);
  }
}

export class SinkError extends CafeStreamError {
  readonly sink: string;
  constructor(sink: string, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super('CS_ERR_SINK', message, options);
    this.sink = sink;
  }
}

export class ConfigError extends CafeStreamError {
  /** dotted path of the offending key, e.g. "streams.0.url". */
  readonly key: string;
  constructor(key: string, message: string, options: { cause?: unknown } = {}) {
    super('CS_ERR_CONFIG', message, options);
    this.key = key;
  }
}

/** A message read from elsewhere (Kafka, a WebSocket, a file) is not a valid event of schema/events.v1.json. */
export class InvalidEventError extends CafeStreamError {
  /** JSON pointers and ajv's reasons, at most five. */
  readonly problems: string[];
  constructor(message: string, problems: string[], options: { cause?: unknown } = {}) {
    super('CS_ERR_INVALID_EVENT', message, options);
    this.problems = problems;
  }
}

export class RetriesExceededError extends CafeStreamError {
  readonly attempts: number;
  constructor(attempts: number, cause: unknown) {
    super('CS_ERR_RETRIES_EXCEEDED', `gave up after ${attempts} attempts: ${errorLine(cause)}`, { cause });
    this.attempts = attempts;
  }
}

/** True for every error cafe-stream raises on purpose (also across copies of the package, by name and code). */
export function isCafeStreamError(err: unknown): err is CafeStreamError {
  if (err instanceof CafeStreamError) return true;
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('CS_ERR_');
}

/** One line for a user: the message of a known error, or the first line of anything else. */
export function errorLine(err: unknown): string {
  if (err instanceof Error) return (err.message.split('\n')[0] ?? err.name).trim() || err.name;
  return String(err);
}
