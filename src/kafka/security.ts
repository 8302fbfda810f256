// TLS and SASL for every Kafka client of ours (the events sink, subscribe, the worker group, `cameras`,
// `submit`), from the config file or the environment. Secrets stay out of command lines and logs.
//
// Environment (used when the config gives no `tls` / `sasl` of its own):
//   CAFE_STREAM_KAFKA_TLS=1                 TLS on (implied by any of the next four)
//   CAFE_STREAM_KAFKA_TLS_CA=<pem file>     trust these CA certificates (default: the system's)
//   CAFE_STREAM_KAFKA_TLS_CERT=<pem file>   client certificate (mutual TLS), with
//   CAFE_STREAM_KAFKA_TLS_KEY=<pem file>    its private key
//   CAFE_STREAM_KAFKA_TLS_INSECURE=1        do not verify the broker's certificate (testing only)
//   CAFE_STREAM_KAFKA_SASL_MECHANISM=plain|scram-sha-256|scram-sha-512
//   CAFE_STREAM_KAFKA_SASL_USERNAME=<user>
//   CAFE_STREAM_KAFKA_SASL_PASSWORD=<password>  or  CAFE_STREAM_KAFKA_SASL_PASSWORD_FILE=<file>
import { readFileSync } from 'node:fs';
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import { z } from 'zod';
import { ConfigError, errorLine } from '../errors.js';

export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export const kafkaTlsSchema = z
  .object({
    caFile: z.string().min(1).optional().describe('PEM file of the CA certificates to trust (default: the system store)'),
    certFile: z.string().min(1).optional().describe('client certificate (PEM) for mutual TLS'),
    keyFile: z.string().min(1).optional().describe('private key (PEM) of certFile'),
    insecure: z.boolean().default(false).describe('do not verify the broker certificate (testing only)'),
  })
  .strict();

export const kafkaSaslSchema = z
  .object({
    mechanism: z.enum(SASL_MECHANISMS).describe('plain, scram-sha-256 or scram-sha-512'),
    username: z.string().min(1),
    password: z.string().min(1).optional().describe('the password; prefer passwordFile or the environment'),
    passwordFile: z.string().min(1).optional().describe('file holding the password (trailing newline ignored)'),
  })
  .strict()
  .refine((s) => (s.password === undefined) !== (s.passwordFile === undefined), { message: 'give exactly one of password or passwordFile' });

export type KafkaTls = z.infer<typeof kafkaTlsSchema>;
export type KafkaSasl = z.infer<typeof kafkaSaslSchema>;

export interface KafkaSecurity {
  /** present: TLS on. */
  tls?: KafkaTls;
  sasl?: KafkaSasl;
}

const ENV = 'CAFE_STREAM_KAFKA_';

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const v = env[ENV + name];
  if (v === undefined || v === '') return false;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(ENV + name, `${ENV}${name} must be 1 or 0, got ${JSON.stringify(v)}`);
}

/** The security settings the environment asks for (empty when none). */
export function kafkaSecurityFromEnv(env: NodeJS.ProcessEnv = process.env): KafkaSecurity {
  const out: KafkaSecurity = {};
  const file = (name: string): string | undefined => (env[ENV + name] === '' ? undefined : env[ENV + name]);
  const ca = file('TLS_CA');
  const cert = file('TLS_CERT');
  const key = file('TLS_KEY');
  const insecure = flag(env, 'TLS_INSECURE');
  if (flag(env, 'TLS') || ca !== undefined || cert !== undefined || key !== undefined || insecure) {
    out.tls = { insecure, ...(ca === undefined ? {} : { caFile: ca }), ...(cert === undefined ? {} : { certFile: cert }), ...(key === undefined ? {} : { keyFile: key }) };
  }
  const mechanism = file('SASL_MECHANISM');
  if (mechanism !== undefined) {
    const m = mechanism.toLowerCase();
    if (!(SASL_MECHANISMS as readonly string[]).includes(m)) {
      throw new ConfigError(`${ENV}SASL_MECHANISM`, `${ENV}SASL_MECHANISM must be one of ${SASL_MECHANISMS.join(', ')}, got ${JSON.stringify(mechanism)}`);
    }
    const username = file('SASL_USERNAME');
    if (username === undefined) throw new ConfigError(`${ENV}SASL_USERNAME`, `${ENV}SASL_MECHANISM is set but ${ENV}SASL_USERNAME is not`);
    const password = file('SASL_PASSWORD');
    const passwordFile = file('SASL_PASSWORD_FILE');
    if ((password === undefined) === (passwordFile === undefined)) {
      throw new ConfigError(`${ENV}SASL_PASSWORD`, `with ${ENV}SASL_MECHANISM set exactly one of ${ENV}SASL_PASSWORD or ${ENV}SASL_PASSWORD_FILE is needed`);
    }
    out.sasl = { mechanism: m as SaslMechanism, username, ...(password === undefined ? { passwordFile: passwordFile! } : { password }) };
  }
  for (const k of Object.keys(env)) {
    if (k.startsWith(ENV) && !KNOWN.has(k.slice(ENV.length))) throw new ConfigError(k, `unknown variable ${k} (known: ${[...KNOWN].map((n) => ENV + n).join(', ')})`);
  }
  return out;
}

const KNOWN = new Set(['TLS', 'TLS_CA', 'TLS_CERT', 'TLS_KEY', 'TLS_INSECURE', 'SASL_MECHANISM', 'SASL_USERNAME', 'SASL_PASSWORD', 'SASL_PASSWORD_FILE']);

/** The config's settings where it has them, the environment's otherwise. */
export function resolveKafkaSecurity(fromConfig: KafkaSecurity | undefined, env: NodeJS.ProcessEnv = process.env): KafkaSecurity {
  const e = kafkaSecurityFromEnv(env);
  const tls = fromConfig?.tls ?? e.tls;
  const sasl = fromConfig?.sasl ?? e.sasl;
  return { ...(tls === undefined ? {} : { tls }), ...(sasl === undefined ? {} : { sasl }) };
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError('kafka.tls', `cannot read the Kafka TLS ${what} ${path}: ${errorLine(err)}`);
  }
}

/** kafkajs `ssl` and `sasl` settings; files are read now, so a missing one is a config error at start. */
export function kafkaClientSecurity(sec: KafkaSecurity | undefined): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const out: Pick<KafkaConfig, 'ssl' | 'sasl'> = {};
  if (sec?.tls !== undefined) {
    const t = sec.tls;
    if ((t.certFile === undefined) !== (t.keyFile === undefined)) throw new ConfigError('kafka.tls', 'Kafka TLS: certFile and keyFile go together');
    out.ssl = {
      rejectUnauthorized: !t.insecure,
      ...(t.caFile === undefined ? {} : { ca: [readPem(t.caFile, 'CA file')] }),
      ...(t.certFile === undefined ? {} : { cert: readPem(t.certFile, 'certificate') }),
      ...(t.keyFile === undefined ? {} : { key: readPem(t.keyFile, 'key') }),
    };
  }
  if (sec?.sasl !== undefined) {
    const s = sec.sasl;
    let password = s.password;
    if (password === undefined) {
      try {
        password = readFileSync(s.passwordFile!, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        throw new ConfigError('kafka.sasl.passwordFile', `cannot read the Kafka SASL password file ${s.passwordFile}: ${errorLine(err)}`);
      }
    }
    out.sasl = { mechanism: s.mechanism, username: s.username, password } as SASLOptions;
  }
  return out;
}

/** For logs: what is on, never a secret. */
export function describeKafkaSecurity(sec: KafkaSecurity | undefined): string {
  const parts: string[] = [sec?.tls === undefined ? 'plaintext' : sec.tls.insecure ? 'tls (unverified)' : 'tls'];
  if (sec?.sasl !== undefined) parts.push(`sasl ${sec.sasl.mechanism} as ${sec.sasl.username}`);
  return parts.join(', ');
}
