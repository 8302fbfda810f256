// The event types a program imports (TimelineEvent and its members, JobDoneEvent) and schema/events.v1.json
// must describe the same events: the same event types, and at every level (event, stream info, box, summary,
// probabilities) the same fields, the same optional ones, and the same literal values. Read with the
// TypeScript checker from src/types.ts, so a field added to one side only fails here. Also parseEvent().
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { InvalidEventError, parseEvent } from '../src/index.js';
import { syntheticEvents } from './helpers/synthetic-events.js';

const root = join(import.meta.dirname, '..');
type Json = { [k: string]: unknown };
const schema = JSON.parse(readFileSync(join(root, 'schema', 'events.v1.json'), 'utf8')) as Json & { $defs: Record<string, Json>; oneOf: { $ref: string }[] };

function deref(s: Json): Json {
  const ref = s['$ref'];
  return typeof ref === 'string' ? deref(schema.$defs[ref.replace('#/$defs/', '')]!) : s;
}

const program = ts.createProgram([join(root, 'src', 'types.ts')], { strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'] });
const checker = program.getTypeChecker();
const source = program.getSourceFile(join(root, 'src', 'types.ts'))!;
const exported = new Map(checker.getExportsOfModule(checker.getSymbolAtLocation(source)!).map((s) => [s.name, s]));
const typeOf = (name: string): ts.Type => checker.getDeclaredTypeOfSymbol(exported.get(name)!);

/** Differences between a TS type and a schema node, as readable lines ("stream.end: error optional in TS only"). */
function compare(t: ts.Type, s: Json, where: string, out: string[]): void {
  s = deref(s);
  const values = (s['enum'] as unknown[] | undefined) ?? ('const' in s ? [s['const']] : undefined);
  if (values !== undefined) {
    const lits = (t.isUnion() ? t.types : [t]).map((x) => (x.isStringLiteral() ? x.value : checker.typeToString(x)));
    if (JSON.stringify([...lits].sort()) !== JSON.stringify(values.map(String).sort())) out.push(`${where}: TS ${lits.join('|')} vs schema ${values.join('|')}`);
    return;
  }
  if (s['type'] !== 'object' || typeof s['properties'] !== 'object') return;
  const props = s['properties'] as Record<string, Json>;
  const required = new Set((s['required'] as string[] | undefined) ?? []);
  const tsProps = new Map(checker.getPropertiesOfType(t).map((p) => [p.name, p]));
  for (const name of new Set([...tsProps.keys(), ...Object.keys(props)])) {
    const p = tsProps.get(name);
    if (p === undefined) out.push(`${where}.${name}: in the schema only`);
    else if (props[name] === undefined) out.push(`${where}.${name}: in TS only`);
    else {
      const optional = (p.flags & ts.SymbolFlags.Optional) !== 0;
      if (optional === required.has(name)) out.push(`${where}.${name}: ${optional ? 'optional in TS, required in the schema' : 'required in TS, optional in the schema'}`);
      compare(checker.getNonNullableType(checker.getTypeOfSymbol(p)), props[name]!, `${where}.${name}`, out);
    }
  }
}

describe('event types agree with schema/events.v1.json', () => {
  const members = [...(typeOf('TimelineEvent') as ts.UnionType).types, typeOf('JobDoneEvent')];
  const literal = (t: ts.Type): string => (checker.getTypeOfSymbol(t.getProperty('type')!) as ts.StringLiteralType).value;

  it('the same event types', () => {
    const inSchema = schema.oneOf.map((r) => String((deref(r as Json)['properties'] as Record<string, Json>)['type']!['const']));
    expect(members.map(literal).sort()).toEqual(inSchema.sort());
  });

  it('the same fields, optional fields and literal values, at every level', () => {
    const problems: string[] = [];
    for (const t of members) {
      const def = schema.oneOf.map((r) => deref(r as Json)).find((d) => (d['properties'] as Record<string, Json>)['type']!['const'] === literal(t))!;
      compare(t, def, literal(t), problems);
    }
    expect(problems).toEqual([]);
  });

  it('the comparison catches a difference (a field the schema lacks)', () => {
    const problems: string[] = [];
    compare(typeOf('StreamEndEvent'), { ...schema.$defs['streamEnd']!, properties: { ...(schema.$defs['streamEnd']!['properties'] as object), extra: { type: 'string' } } }, 'stream.end', problems);
    expect(problems).toEqual(['stream.end.extra: in the schema only']);
  });
});

describe('parseEvent()', () => {
  const events = syntheticEvents();

  it('accepts every event the pipeline writes, as JSON text, bytes or a value', () => {
    for (const e of events) {
      expect(parseEvent(JSON.stringify(e))).toEqual(e);
      expect(parseEvent(Buffer.from(JSON.stringify(e)))).toEqual(e);
      expect(parseEvent(e)).toEqual(e);
    }
  });

  it('names what is wrong: a misspelt field, a wrong type, not JSON', () => {
    const obs = events.find((e) => e.type === 'face.observation')!;
    const { confidence, ...rest } = obs as typeof obs & { confidence: number };
    const bad = () => parseEvent({ ...rest, confidense: confidence });
    expect(bad).toThrow(InvalidEventError);
    expect(bad).toThrow(/type "face.observation"/);
    expect(bad).toThrow(/confidence|confidense/);
    expect(() => parseEvent({ ...obs, type: 'face.observed' })).toThrow(/not a cafe-stream event/);
    const err = (() => {
      try {
        parseEvent('{"type": ');
      } catch (e) {
        return e as InvalidEventError;
      }
    })();
    expect(err?.code).toBe('CS_ERR_INVALID_EVENT');
    expect(err?.message).toMatch(/^not JSON/);
  });
});
