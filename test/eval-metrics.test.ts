// Pure logic of `cafe-stream evaluate`: scores, label rules of each layout, class mapping of the peers,
// CSV quoting. Numbers are small enough to check by hand.
import { describe, expect, it } from 'vitest';
import { csvField } from '../src/eval/crop-export.js';
import { classFromName, ferplusMajority, groupFromPath, parseDatasetSpec, spreadLimit, taiwaneseLabel } from '../src/eval/datasets.js';
import { largest } from '../src/eval/evaluate-set.js';
import { argmax, formatDomain, scoreOutcomes, type Outcome } from '../src/eval/metrics.js';
import { mapPeerClasses } from '../src/eval/peers/map-classes.js';
import { EXPRESSIONS, type Expression } from '../src/types.js';

const o = (label: Expression, predicted?: Expression): Outcome => (predicted === undefined ? { label } : { label, predicted });

describe('scoreOutcomes', () => {
  // 3 happiness (2 right, 1 read as neutral), 2 neutral (both right), 1 anger read as sadness, 1 anger with no face.
  const outcomes = [
    o('happiness', 'happiness'),
    o('happiness', 'happiness'),
    o('happiness', 'neutral'),
    o('neutral', 'neutral'),
    o('neutral', 'neutral'),
    o('anger', 'sadness'),
    o('anger'),
  ];
  const m = scoreOutcomes(outcomes);

  it('accuracy on found faces, and on all images with a missing face as an error', () => {
    expect(m.images).toBe(7);
    expect(m.n).toBe(6);
    expect(m.facesNotFound).toBe(1);
    expect(m.accuracy).toBeCloseTo(4 / 6, 12);
    expect(m.accuracyAll).toBeCloseTo(4 / 7, 12);
  });

  it('per-class recall over classes with samples; macro recall is their mean', () => {
    expect(m.perClassRecall.happiness).toBeCloseTo(2 / 3, 12);
    expect(m.perClassRecall.neutral).toBe(1);
    expect(m.perClassRecall.anger).toBe(0);
    expect(m.perClassRecall.surprise).toBeNull();
    expect(m.perClassRecall.sadness).toBeNull(); // predicted once, but no true sadness
    expect(m.macroRecall).toBeCloseTo((2 / 3 + 1 + 0) / 3, 12);
    expect(m.support).toMatchObject({ happiness: 3, neutral: 2, anger: 1, sadness: 0 });
  });

  it('confusion: rows true, columns predicted, EXPRESSIONS order', () => {
    const i = (e: Expression): number => EXPRESSIONS.indexOf(e);
    expect(m.classes).toEqual(EXPRESSIONS);
    expect(m.confusion[i('happiness')]![i('happiness')]).toBe(2);
    expect(m.confusion[i('happiness')]![i('neutral')]).toBe(1);
    expect(m.confusion[i('anger')]![i('sadness')]).toBe(1);
    expect(m.confusion.flat().reduce((a, b) => a + b, 0)).toBe(6);
  });

  it('no outcomes: zeros, not NaN', () => {
    const e = scoreOutcomes([]);
    expect([e.accuracy, e.accuracyAll, e.macroRecall, e.n]).toEqual([0, 0, 0, 0]);
  });

  it('formats a readable block', () => {
    const text = formatDomain('demo', m);
    expect(text).toContain('demo: n=6 of 7 images, faces not found 1; accuracy 66.7% (all images 57.1%), macro recall 55.6%');
    expect(text.split('\n').filter((l) => l.startsWith('  anger')).at(0)).toMatch(/^ {2}anger( +\d+){7}$/);
  });
});

describe('layout label rules', () => {
  it('taiwanese: 5th character a–g, 0 unlabelled', () => {
    expect(taiwaneseLabel('0101a02.jpg')).toBe('neutral');
    expect(taiwaneseLabel('0111b01.jpg')).toBe('happiness');
    expect(taiwaneseLabel('2312c05.jpg')).toBe('sadness');
    expect(taiwaneseLabel('0101d01.jpg')).toBe('anger');
    expect(taiwaneseLabel('0101e01.jpg')).toBe('disgust');
    expect(taiwaneseLabel('0101f01.jpg')).toBe('fear');
    expect(taiwaneseLabel('0101g01.jpg')).toBe('surprise');
    expect(taiwaneseLabel('0101001.jpg')).toBeUndefined();
  });

  it('FER+ majority: ties for the top and contempt/unknown/NF winners are dropped (trainer protocol)', () => {
    // columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    expect(ferplusMajority([4, 0, 0, 0, 1, 0, 0, 4, 1, 0])).toBeUndefined(); // neutral ties contempt
    expect(ferplusMajority([1, 0, 0, 1, 0, 2, 0, 6, 0, 0])).toBeUndefined(); // contempt wins
    expect(ferplusMajority([7, 0, 0, 0, 2, 0, 0, 1, 0, 0])).toBe('neutral');
    expect(ferplusMajority([0, 0, 6, 0, 0, 0, 4, 0, 0, 0])).toBe('surprise');
    expect(ferplusMajority([0, 0, 0, 0, 0, 0, 0, 0, 3, 7])).toBeUndefined(); // not a face
    expect(ferplusMajority([0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).toBeUndefined();
  });

  it('class names and synonyms as the trainer reads them', () => {
    expect(classFromName('Happy')).toBe('happiness');
    expect(classFromName(' scared ')).toBe('fear');
    expect(classFromName('contempt')).toBeUndefined();
  });

  it('csv group: file stem before its last underscore', () => {
    expect(groupFromPath('images/buaa-55_24.jpg')).toBe('buaa-55');
    expect(groupFromPath('a/b_c_3.png')).toBe('b_c');
    expect(groupFromPath('images/photo.jpg')).toBe('');
  });

  it('specs: [name=]layout:path', () => {
    expect(parseDatasetSpec('csv:/x/labels.csv')).toEqual({ layout: 'csv', path: '/x/labels.csv' });
    expect(parseDatasetSpec('night=csv:/x/a=b.csv')).toEqual({ name: 'night', layout: 'csv', path: '/x/a=b.csv' });
    expect(() => parseDatasetSpec('rafdb:/x')).toThrow(/LAYOUT one of taiwanese, csv, folder, ferplus/);
    expect(() => parseDatasetSpec('folder:')).toThrow(/expected/);
  });

  it('--limit spreads evenly over the set', () => {
    expect(spreadLimit([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 3)).toEqual([0, 3, 6]);
    expect(spreadLimit([1, 2], 5)).toEqual([1, 2]);
  });
});

describe('peers and helpers', () => {
  it('maps a peer’s classes onto ours, dropping contempt', () => {
    const peer = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral', 'contempt'];
    const p = mapPeerClasses([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9], peer);
    expect(Array.from(p, (v) => Math.round(v * 10) / 10)).toEqual([0.6, 0.3, 0.2, 0.4, 0.5, 0.1, 0.7]);
    expect(EXPRESSIONS[argmax(p)]).toBe('neutral');
    expect(() => mapPeerClasses([1, 2], ['happy', 'sad'])).toThrow(/do not cover/);
  });

  it('largest face by box area', () => {
    const d = (w: number, h: number, score: number) => ({ box: { x: 0, y: 0, width: w, height: h }, score });
    expect(largest([d(10, 10, 0.9), d(30, 20, 0.5), d(20, 20, 0.8)])?.score).toBe(0.5);
    expect(largest([])).toBeUndefined();
  });

  it('CSV fields: numbers to 3 decimals, quotes where needed', () => {
    expect(csvField(1.23456)).toBe('1.235');
    expect(csvField(undefined)).toBe('');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
  });
});
