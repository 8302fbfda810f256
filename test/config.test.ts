// The serve config: strict (unknown keys named by path), defaults, bounds, duplicate ids, YAML errors by line.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLiveConfig, parseLiveConfig, parseStreamConfig, pipelineOptionsOf } from '../src/config.js';
import { ConfigError } from '../src/errors.js';

function keyOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).key;
  }
  throw new Error('expected a ConfigError');
}

describe('live config', () => {
  it('fills defaults', () => {
    const cfg = parseLiveConfig({ streams: [{ id: 'a', url: 'rtsp://h/x' }] });
    expect(cfg.streams[0]).toEqual({ id: 'a', url: 'rtsp://h/x', transport: 'tcp', stallSeconds: 5, enabled: true });
    expect(cfg.http).toEqual({ host: '127.0.0.1', port: 8080, control: true });
    expect(cfg.device).toBe('cpu');
    expect(cfg.batching.maxBatch).toBe(16);
    expect(cfg.shutdownSeconds).toBe(10);
    expect(pipelineOptionsOf(cfg).batch).toEqual(cfg.batching);
    expect(pipelineOptionsOf(cfg).tracker.maxLostSeconds).toBe(1);
    expect(cfg.detector).toEqual({ model: 'full', runtime: 'onnx', tile: false, mosaic: true });
    expect(pipelineOptionsOf(cfg).detection.scanSeconds).toBe(2);
    expect(parseLiveConfig({ detector: { tile: true } }).detector).toEqual({ model: 'full', runtime: 'onnx', tile: true, mosaic: true });
    expect(parseLiveConfig({ detector: { runtime: 'tfjs' } }).detector.runtime).toBe('tfjs');
    expect(() => parseLiveConfig({ detector: { runtime: 'tflite' } })).toThrow(/detector.runtime/);
    expect(parseLiveConfig({ detector: { mosaic: false } }).detector.mosaic).toBe(false);
    expect(() => parseLiveConfig({ detector: { mosaic: 'yes' } })).toThrow(/detector.mosaic/);
  });

  it('names the unknown key by its path', () => {
    expect(keyOf(() => parseLiveConfig({ streams: [{ id: 'a', url: 'rtsp://h/x', fps: 3 }] }))).toBe('streams.0.fps');
    expect(keyOf(() => parseLiveConfig({ htp: {} }))).toBe('htp');
    expect(keyOf(() => parseLiveConfig({ sinks: { kafka: { brokers: ['h:1'], topc: 'x' } } }))).toBe('sinks.kafka.topc');
    expect(() => parseLiveConfig({ http: { prot: 1 } })).toThrow(/http\.prot: unknown key/);
  });

  it('checks bounds and types', () => {
    expect(keyOf(() => parseLiveConfig({ streams: [{ id: 'a', url: 'rtsp://h/x', sampleFps: -1 }] }))).toBe('streams.0.sampleFps');
    expect(keyOf(() => parseLiveConfig({ streams: [{ id: 'a', url: 'http://h/x' }] }))).toBe('streams.0.url');
    expect(keyOf(() => parseLiveConfig({ streams: [{ id: 'a', url: 'rtsp://h/x', transport: 'sctp' }] }))).toBe('streams.0.transport');
    expect(keyOf(() => parseLiveConfig({ http: { port: 70000 } }))).toBe('http.port');
    expect(keyOf(() => parseLiveConfig({ batching: { maxBatch: 0 } }))).toBe('batching.maxBatch');
    expect(keyOf(() => parseLiveConfig({ device: 'tpu' }))).toBe('device');
    expect(keyOf(() => parseLiveConfig({ modelThreads: -1 }))).toBe('modelThreads');
    expect(keyOf(() => parseLiveConfig({ modelThreads: 1.5 }))).toBe('modelThreads');
    expect(parseLiveConfig({ modelThreads: 0 }).modelThreads).toBe(0);
    expect(keyOf(() => parseLiveConfig({ detector: { model: 'huge' } }))).toBe('detector.model');
    expect(keyOf(() => parseLiveConfig({ detector: { tiles: true } }))).toBe('detector.tiles');
    expect(keyOf(() => parseLiveConfig({ pipeline: { detection: { scanSeconds: -1 } } }))).toBe('pipeline.detection.scanSeconds');
    expect(keyOf(() => parseLiveConfig({ reconnect: { initialDelayMs: 5000, maxDelayMs: 100 } }))).toBe('reconnect.maxDelayMs');
  });

  it('rejects duplicate stream ids, naming the second', () => {
    const streams = [
      { id: 'a', url: 'rtsp://h/1' },
      { id: 'a', url: 'rtsp://h/2' },
    ];
    expect(keyOf(() => parseLiveConfig({ streams }))).toBe('streams.1.id');
  });

  it('validates a single stream (the POST /streams body)', () => {
    expect(parseStreamConfig({ id: 'x', url: 'rtsp://h/x', transport: 'udp' }).transport).toBe('udp');
    expect(keyOf(() => parseStreamConfig({ id: 'bad id', url: 'rtsp://h/x' }))).toBe('id');
  });

  it('loads YAML files; syntax errors name the line; the example config is valid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'streams:\n  - id: a\n    url: rtsp://h/x\n  bad: [\n');
    await expect(loadLiveConfig(bad)).rejects.toThrow(/bad\.yaml:\d+: YAML/);
    await expect(loadLiveConfig(join(dir, 'missing.yaml'))).rejects.toThrow(/ENOENT/);
    const example = await loadLiveConfig(new URL('../examples/cameras.yaml', import.meta.url).pathname);
    expect(example.streams.map((s) => [s.id, s.enabled])).toEqual([
      ['lobby', true],
      ['desk', true],
      ['parking', false],
    ]);
  });
});
