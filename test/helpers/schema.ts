// Validates timeline events against schema/events.v1.json with ajv (draft 2020-12 + formats), compiled once.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ValidateFunction } from 'ajv';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const EVENTS_SCHEMA_PATH = join(repoRoot, 'schema', 'events.v1.json');

let validator: ValidateFunction | undefined;
let byType: ((type: string) => ValidateFunction | undefined) | undefined;

const DEF_BY_TYPE: Record<string, string> = {
  'stream.start': 'streamStart',
  'stream.online': 'streamOnline',
  'stream.offline': 'streamOffline',
  'track.start': 'trackStart',
  'face.observation': 'faceObservation',
  'face.segment': 'faceSegment',
  'track.end': 'trackEnd',
  'stream.end': 'streamEnd',
};

function compile(): ValidateFunction {
  // strictRequired off: the schema's if/then on stream.end requires `error` declared in the enclosing object.
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
  // ajv-formats is CommonJS: under NodeNext its function sits on .default.
  type AddFormats = (a: Ajv2020) => unknown;
  const mod = addFormatsModule as unknown as AddFormats & { default?: AddFormats };
  (mod.default ?? mod)(ajv);
  const schema = JSON.parse(readFileSync(EVENTS_SCHEMA_PATH, 'utf8')) as { $id: string };
  const validate = ajv.compile(schema);
  // For messages: the one branch the event's `type` names (oneOf's own errors list every branch).
  byType = (type) => {
    const def = DEF_BY_TYPE[type];
    return def === undefined ? undefined : ajv.getSchema(`${schema.$id}#/$defs/${def}`);
  };
  return validate;
}

/** Throws with ajv's messages if `event` does not follow the schema. */
export function assertValidEvent(event: unknown): void {
  validator ??= compile();
  if (!validator(event)) {
    const type = String((event as { type?: unknown } | null)?.type ?? '');
    const branch = byType?.(type);
    const errors = branch !== undefined && !branch(event) ? branch.errors : validator.errors;
    const why = (errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
    throw new Error(`${type || 'event'} does not match schema/events.v1.json: ${why.join('; ')}\n${JSON.stringify(event)}`);
  }
}

export function assertValidEvents(events: Iterable<unknown>): void {
  for (const e of events) assertValidEvent(e);
}
