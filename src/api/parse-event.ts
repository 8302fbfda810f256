// parseEvent(): events read from elsewhere (a Kafka topic, a WebSocket, a JSONL file) checked against
// schema/events.v1.json, the same schema the producer's output is tested against, and typed by their `type`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import { InvalidEventError, errorLine } from '../errors.js';
import { packageRoot } from '../paths.js';
import type { JobDoneEvent, TimelineEvent } from '../types.js';

interface SchemaDoc {
  $id: string;
  oneOf: { $ref: string }[];
  $defs: Record<string, { properties?: { type?: { const?: string } } }>;
}

/** Everything a cafe-stream events topic may carry: the timeline events and a worker's job.done. */
export type CafeStreamEvent = TimelineEvent | JobDoneEvent;

let validate: ValidateFunction | undefined;
/** event type → the schema branch for it, so a message names that branch's problems, not every branch's. */
const branches = new Map<string, ValidateFunction>();

function validator(): ValidateFunction {
  if (validate !== undefined) return validate;
  // strictRequired off: the schema's if/then on stream.end requires `error` declared in the enclosing object.
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
  // ajv-formats is CommonJS: under NodeNext its function sits on .default.
  type AddFormats = (a: Ajv2020) => unknown;
  const mod = addFormatsModule as unknown as AddFormats & { default?: AddFormats };
  (mod.default ?? mod)(ajv);
  const schema = JSON.parse(readFileSync(join(packageRoot(), 'schema', 'events.v1.json'), 'utf8')) as SchemaDoc;
  validate = ajv.compile(schema);
  for (const { $ref } of schema.oneOf) {
    const type = schema.$defs[$ref.replace('#/$defs/', '')]?.properties?.type?.const;
    const branch = ajv.getSchema(`${schema.$id}${$ref}`);
    if (type !== undefined && branch !== undefined) branches.set(type, branch);
  }
  return validate;
}

/**
 * A JSON string, Buffer or parsed value → a typed event; throws InvalidEventError (code CS_ERR_INVALID_EVENT)
 * naming what is wrong when it is not an event of schema v1.
 */
export function parseEvent(input: string | Uint8Array | unknown): CafeStreamEvent {
  let value: unknown = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new InvalidEventError(`not JSON: ${errorLine(err)}`, [], { cause: err });
    }
  }
  const check = validator();
  if (!check(value)) {
    const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
    const branch = typeof type === 'string' ? branches.get(type) : undefined;
    const errors = branch !== undefined && !branch(value) ? (branch.errors ?? []) : (check.errors ?? []);
    const problems = errors.slice(0, 5).map((e) => {
      const p = e.params as { additionalProperty?: string; missingProperty?: string };
      const what = p.additionalProperty !== undefined ? `: ${JSON.stringify(p.additionalProperty)}` : '';
      return `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${what}`;
    });
    const known = branch !== undefined || typeof type !== 'string' ? '' : ` (unknown type ${JSON.stringify(type)})`;
    throw new InvalidEventError(`not a cafe-stream event${known || (typeof type === 'string' ? ` (type ${JSON.stringify(type)})` : '')}: ${problems.join('; ') || 'does not match schema/events.v1.json'}`, problems);
  }
  return value as CafeStreamEvent;
}

/** True when `value` is a valid event (no exception). */
export function isEvent(value: unknown): value is CafeStreamEvent {
  return validator()(value) === true;
}
