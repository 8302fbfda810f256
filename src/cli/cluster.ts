// The worker group (docs/cluster.md): `cafe-stream worker` joins a group coordinated by Kafka and runs the
// cameras of the control-topic partitions it is assigned; `cafe-stream cameras add|rm|ls` edits that topic.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { Command, Option } from 'commander';
import { loadLiveConfig, parseLiveConfig, parseStreamConfig, type LiveConfig } from '../config.js';
import { CafeStreamError, ConfigError, errorLine } from '../errors.js';
import { DEFAULT_CAMERA_PARTITIONS, DEFAULT_CAMERAS_TOPIC, ensureCamerasTopic, listCameras, putCamera, removeCamera } from '../kafka/cameras.js';
import { newKafka } from '../kafka/client.js';
import { describeKafkaSecurity, resolveKafkaSecurity } from '../kafka/security.js';
import { Counter, Gauge } from 'prom-client';
import { DEFAULT_JOBS_TOPIC, ensureJobsTopic, newJob, submitJobs } from '../kafka/jobs.js';
import { redactUrl } from '../ingest/rtsp-source.js';
import { CameraGroup } from '../live/camera-group.js';
import { JobRunner } from '../live/job-runner.js';
import { within, type GroupMembership } from '../kafka/group-member.js';
import { createKafkaSink, DEFAULT_KAFKA_TOPIC } from '../sinks/kafka-sink.js';
import { exitCodeFor } from './exit-codes.js';
import { runLive } from './live.js';
import { positiveInteger, positiveNumber } from './arg-parsers.js';

const brokerList = (v: string): string[] => v.split(',').filter((b) => b !== '');

function exitOnError(err: unknown): never {
  process.stderr.write(`cafe-stream: ${errorLine(err)}\n`);
  process.exit(exitCodeFor(err));
}

interface WorkerOptions {
  kafka: string[];
  group: string;
  config?: string;
  camerasTopic: string;
  eventsTopic: string;
  jobsTopic: string;
  jobs: boolean;
  partitions: number;
  id?: string;
  http?: string;
  models?: string;
  device?: LiveConfig['device'];
  sessionTimeout: number;
}

interface CamerasOptions {
  kafka: string[];
  camerasTopic: string;
}

export function register(program: Command): void {
  program
    .command('worker')
    .description('join a worker group coordinated by Kafka and run the cameras assigned to this worker (docs/cluster.md)')
    .requiredOption('--kafka <brokers>', 'bootstrap host:port[,host:port…] (TLS/SASL: CAFE_STREAM_KAFKA_* or the config)', brokerList)
    .requiredOption('--group <name>', 'the worker group (a Kafka consumer group): workers of one group share its cameras')
    .option('-c, --config <file>', 'worker settings as in cameras.yaml (models, device, batching, pipeline, http, sinks…); its streams run here too')
    .option('--cameras-topic <topic>', 'compacted control topic of camera entries', DEFAULT_CAMERAS_TOPIC)
    .option('--events-topic <topic>', 'topic for every event', DEFAULT_KAFKA_TOPIC)
    .option('--jobs-topic <topic>', 'topic of file jobs (cafe-stream submit)', DEFAULT_JOBS_TOPIC)
    .option('--no-jobs', 'run cameras only, take no file jobs')
    .option('--partitions <n>', 'partitions of a control topic this worker creates (the most workers that get cameras)', positiveInteger, DEFAULT_CAMERA_PARTITIONS)
    .option('--id <id>', 'worker id in logs, /healthz and the `worker` header of its events (default host-pid)')
    .option('--http <host:port>', '/healthz, /metrics and the dashboard (default: the config\'s http, else 127.0.0.1:8080)')
    .option('--models <dir>', 'models folder (overrides the config)')
    .addOption(new Option('--device <d>', 'model execution provider (overrides the config)').choices(['cpu', 'cuda', 'webgpu', 'auto']))
    .option('--session-timeout <s>', 'seconds without a heartbeat before the group gives a worker\'s cameras and job to the others (the broker\'s minimum is 6 by default)', positiveNumber, DEFAULT_SESSION_TIMEOUT_S)
    .action(async (opts: WorkerOptions) => {
      const workerId = opts.id ?? `${hostname()}-${process.pid}`;
      const timing = groupTiming(opts.sessionTimeout);
      const config = await workerConfig(opts).catch(exitOnError);
      const kafkaCfg = config.sinks.kafka!;
      const security = (() => {
        try {
          return resolveKafkaSecurity({ ...(kafkaCfg.tls === undefined ? {} : { tls: kafkaCfg.tls }), ...(kafkaCfg.sasl === undefined ? {} : { sasl: kafkaCfg.sasl }) });
        } catch (err) {
          return exitOnError(err);
        }
      })();
      // no SIGHUP reload: it would make the running set match the file and stop the group's cameras
      await runLive(config, {
        kafkaHeaders: { worker: workerId },
        attach: async (runner, { log, metrics, detector, model, options }) => {
          const kafka = newKafka({ brokers: opts.kafka, clientId: `cafe-stream-worker-${workerId}`, security });
          log.info({ workerId, group: opts.group, topic: opts.camerasTopic, kafka: describeKafkaSecurity(security) }, 'worker: joining the group');
          await ensureCamerasTopic(kafka, opts.camerasTopic, opts.partitions);
          const group = new CameraGroup({
            kafka,
            group: opts.group,
            topic: opts.camerasTopic,
            workerId,
            host: runner,
            log: log.child({ worker: workerId }),
            ...timing,
          });
          await group.start();
          let jobs: JobRunner | undefined;
          let jobSink: Awaited<ReturnType<typeof createKafkaSink>> | undefined;
          if (opts.jobs) {
            await ensureJobsTopic(kafka, opts.jobsTopic);
            // its own sink: a job's events must never be dropped, and flush() marks them delivered
            jobSink = await createKafkaSink({ brokers: opts.kafka, topic: opts.eventsTopic, overflow: 'block', security, headers: { worker: workerId }, log });
            jobs = new JobRunner({
              kafka,
              group: `${opts.group}.jobs`,
              topic: opts.jobsTopic,
              eventsTopic: opts.eventsTopic,
              workerId,
              detector,
              model,
              sink: jobSink,
              options,
              log: log.child({ worker: workerId }),
              ...timing,
            });
            await jobs.start();
          }
          const groups = (): GroupMembership[] => [group.state().membership, ...(jobs === undefined ? [] : [jobs.state().membership])];
          registerWorkerMetrics(metrics.registry, () => group.state(), () => jobs?.state(), groups);
          return {
            health: () => {
              // a worker outside a group it belongs in does no work there, whatever its cameras say
              const out = groups().filter((m) => !m.member && (m.outSeconds ?? 0) * 1000 > timing.sessionTimeoutMs * 2);
              return {
                ...(out.length > 0 ? { status: 'unhealthy', unhealthy: out.map((m) => `not a member of group ${m.group} for ${m.outSeconds} s`) } : {}),
                worker: { ...group.state(), ...(jobs === undefined ? {} : { jobs: jobs.state() }) },
              };
            },
            close: async () => {
              await jobs?.close();
              // what an aborted job left unsent is redone by another worker: no reason to wait for a broker that is away
              if (jobSink !== undefined) await within(jobSink.close(), jobSink.stats().connected ? 5_000 : 2_000);
              await group.close();
            },
          };
        },
      });
    });

  program
    .command('submit')
    .description('put file analysis jobs on a worker group\'s jobs topic; prints one job id per file (docs/cluster.md)')
    .argument('<files...>', 'video files, at paths every worker can read (a shared volume)')
    .requiredOption('--kafka <brokers>', 'bootstrap host:port[,host:port…] (TLS/SASL: CAFE_STREAM_KAFKA_*)', brokerList)
    .option('--jobs-topic <topic>', 'topic of file jobs', DEFAULT_JOBS_TOPIC)
    .option('--sample-fps <n>', 'analyse at most n frames per second of each file', positiveNumber)
    .option('--json', 'one JSON job per line instead of "job-id  file"')
    .action(async (files: string[], opts: { kafka: string[]; jobsTopic: string; sampleFps?: number; json?: boolean }) => {
      try {
        // a worker would only report it in a job.done; say it now, before anything is submitted
        const missing = files.filter((f) => !existsSync(f));
        if (missing.length > 0) throw new CafeStreamError('CS_ERR_INPUT_MISSING', `no such file: ${missing.join(', ')}`);
        const kafka = newKafka({ brokers: opts.kafka, clientId: 'cafe-stream-submit' });
        await ensureJobsTopic(kafka, opts.jobsTopic);
        const jobs = files.map((f) => newJob(f, opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }));
        await submitJobs(kafka, opts.jobsTopic, jobs);
        for (const j of jobs) process.stdout.write(opts.json ? `${JSON.stringify(j)}\n` : `${j.jobId}  ${j.file}\n`);
      } catch (err) {
        exitOnError(err);
      }
    });

  const cameras = program.command('cameras').description('edit the camera list of a worker group (its Kafka control topic)');
  const common = (c: Command): Command =>
    c
      .requiredOption('--kafka <brokers>', 'bootstrap host:port[,host:port…] (TLS/SASL: CAFE_STREAM_KAFKA_*)', brokerList)
      .option('--cameras-topic <topic>', 'compacted control topic of camera entries', DEFAULT_CAMERAS_TOPIC);

  common(cameras.command('add'))
    .description('add a camera (or replace its entry): cameras add <id> <rtsp-url> [options], or --file cameras.yaml for every stream in it')
    .argument('[id]', 'camera id (stream id in events)')
    .argument('[url]', 'rtsp:// or rtsps:// URL')
    .option('--file <cameras.yaml>', 'add every entry of this file\'s `streams`')
    .addOption(new Option('--transport <t>', 'RTSP transport').choices(['tcp', 'udp']))
    .option('--sample-fps <n>', 'analyse at most n frames per second', positiveNumber)
    .option('--max-width <px>', 'scale frames down to this width first', positiveInteger)
    .option('--stall-seconds <s>', 'reconnect after this long without a frame', positiveNumber)
    .option('--partitions <n>', 'partitions of a control topic this command creates', positiveInteger, DEFAULT_CAMERA_PARTITIONS)
    .action(async (id: string | undefined, url: string | undefined, opts: CamerasOptions & { file?: string; transport?: string; sampleFps?: number; maxWidth?: number; stallSeconds?: number; partitions: number }) => {
      try {
        const entries = await (async () => {
          if (opts.file !== undefined) {
            if (id !== undefined) throw new ConfigError('cameras', 'give either <id> <url> or --file, not both');
            return (await loadLiveConfig(opts.file)).streams;
          }
          if (id === undefined || url === undefined) throw new ConfigError('cameras', 'cameras add needs <id> <url> (or --file cameras.yaml)');
          return [
            parseStreamConfig(
              {
                id,
                url,
                ...(opts.transport === undefined ? {} : { transport: opts.transport }),
                ...(opts.sampleFps === undefined ? {} : { sampleFps: opts.sampleFps }),
                ...(opts.maxWidth === undefined ? {} : { maxWidth: opts.maxWidth }),
                ...(opts.stallSeconds === undefined ? {} : { stallSeconds: opts.stallSeconds }),
              },
              'camera',
            ),
          ];
        })();
        const kafka = newKafka({ brokers: opts.kafka, clientId: 'cafe-stream-cameras' });
        await ensureCamerasTopic(kafka, opts.camerasTopic, opts.partitions);
        for (const cfg of entries) {
          const partition = await putCamera(kafka, opts.camerasTopic, cfg);
          process.stdout.write(`${cfg.id}: added (partition ${partition})\n`);
        }
      } catch (err) {
        exitOnError(err);
      }
    });

  common(cameras.command('rm'))
    .description('remove cameras (a tombstone each): the worker running one stops it')
    .argument('<ids...>', 'camera ids')
    .action(async (ids: string[], opts: CamerasOptions) => {
      try {
        const kafka = newKafka({ brokers: opts.kafka, clientId: 'cafe-stream-cameras' });
        let missing = 0;
        for (const id of ids) {
          if (await removeCamera(kafka, opts.camerasTopic, id)) process.stdout.write(`${id}: removed\n`);
          else {
            process.stderr.write(`cafe-stream: error: no camera ${id} in ${opts.camerasTopic}\n`);
            missing++;
          }
        }
        if (missing > 0) process.exit(3);
      } catch (err) {
        exitOnError(err);
      }
    });

  common(cameras.command('ls'))
    .description('list the cameras of the group (id, partition, URL without credentials)')
    .option('--json', 'one JSON object per camera')
    .action(async (opts: CamerasOptions & { json?: boolean }) => {
      try {
        const kafka = newKafka({ brokers: opts.kafka, clientId: 'cafe-stream-cameras' });
        const { cameras: list } = await listCameras(kafka, opts.camerasTopic);
        for (const c of list) {
          // credentials in camera URLs stay in the topic: never printed
          const config = c.config === null ? null : { ...c.config, url: redactUrl(c.config.url) };
          if (opts.json) process.stdout.write(`${JSON.stringify({ id: c.id, partition: c.partition, config, ...(c.invalid === undefined ? {} : { invalid: c.invalid }) })}\n`);
          else process.stdout.write(`${c.id}\tpartition ${c.partition}\t${c.invalid ?? config?.url ?? ''}\n`);
        }
      } catch (err) {
        exitOnError(err);
      }
    });
}

/** Default session timeout: the broker's default minimum, so a dead worker's cameras move soonest (docs/cluster.md). */
export const DEFAULT_SESSION_TIMEOUT_S = 6;

/**
 * Heartbeats every session/12 (0.5 s at the default): the broker's last sign of a worker is at most that old
 * when it dies, and survivors hear of the rebalance within that; both are part of the takeover time.
 */
function groupTiming(sessionSeconds: number): { sessionTimeoutMs: number; heartbeatIntervalMs: number } {
  const sessionTimeoutMs = Math.round(sessionSeconds * 1000);
  return { sessionTimeoutMs, heartbeatIntervalMs: Math.max(200, Math.min(3000, Math.round(sessionTimeoutMs / 12))) };
}

/** The group's figures on /metrics, read when scraped. */
function registerWorkerMetrics(
  registry: import('prom-client').Registry,
  group: () => ReturnType<CameraGroup['state']>,
  jobs: () => ReturnType<JobRunner['state']> | undefined,
  groups: () => GroupMembership[],
): void {
  new Gauge({ name: 'cafe_worker_group_member', help: '1 while this worker is a member of the group, else 0', labelNames: ['group'], registers: [registry], collect() { this.reset(); for (const m of groups()) this.set({ group: m.group }, m.member ? 1 : 0); } });
  new Counter({ name: 'cafe_worker_group_restarts_total', help: 'times a group consumer crashed and was restarted (it rejoins by itself)', labelNames: ['group'], registers: [registry], collect() { this.reset(); for (const m of groups()) this.inc({ group: m.group }, m.restarts); } });
  new Counter({ name: 'cafe_worker_jobs_aborted_total', help: 'file jobs given up mid-file because their partition left this worker (another redoes them)', registers: [registry], collect() { this.reset(); this.inc(jobs()?.jobsAborted ?? 0); } });
  new Gauge({ name: 'cafe_worker_cameras', help: 'cameras this worker runs', registers: [registry], collect() { this.set(group().cameras.length); } });
  new Gauge({ name: 'cafe_worker_partitions', help: 'control-topic partitions assigned to this worker', registers: [registry], collect() { this.set(group().partitions.length); } });
  new Gauge({ name: 'cafe_worker_rebalances', help: 'group joins of this worker since it started', registers: [registry], collect() { this.set(group().rebalances); } });
  new Gauge({ name: 'cafe_worker_camera_fps', help: 'analysed frames per second per camera', labelNames: ['camera'], registers: [registry], collect() { this.reset(); for (const c of group().cameras) this.set({ camera: c.id }, c.fps); } });
  new Counter({ name: 'cafe_worker_jobs_done_total', help: 'file jobs finished (ok)', registers: [registry], collect() { this.reset(); this.inc(jobs()?.jobsDone ?? 0); } });
  new Counter({ name: 'cafe_worker_jobs_failed_total', help: 'file jobs finished with an error', registers: [registry], collect() { this.reset(); this.inc(jobs()?.jobsFailed ?? 0); } });
}

/** The worker's config: the file's (streams included) or defaults, with the events sink on --kafka. */
async function workerConfig(opts: WorkerOptions): Promise<LiveConfig> {
  const base = opts.config === undefined ? parseLiveConfig({}, 'worker') : await loadLiveConfig(opts.config);
  const raw: Record<string, unknown> = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  const sinks = (raw['sinks'] ?? {}) as Record<string, unknown>;
  const kafka = (sinks['kafka'] ?? {}) as Record<string, unknown>;
  sinks['kafka'] = { ...kafka, brokers: opts.kafka, topic: opts.eventsTopic };
  raw['sinks'] = sinks;
  if (opts.models !== undefined) raw['models'] = opts.models;
  if (opts.device !== undefined) raw['device'] = opts.device;
  if (opts.http !== undefined) {
    const m = /^(.+):(\d{1,5})$/.exec(opts.http);
    if (m === null) throw new ConfigError('http', `--http wants host:port, got ${JSON.stringify(opts.http)}`);
    raw['http'] = { ...(raw['http'] as Record<string, unknown>), host: m[1], port: Number(m[2]) };
  }
  // ws needs the http server, which a worker always has; nothing else to adjust
  return parseLiveConfig(raw, opts.config ?? 'worker');
}
