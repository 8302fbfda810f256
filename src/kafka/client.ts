// One way to build a kafkajs client for our commands: brokers checked, TLS/SASL applied, kafkajs' own logging
// off (we log one line per state change ourselves).
import { type Consumer, type ConsumerConfig, Kafka, logLevel, type RetryOptions } from 'kafkajs';
import { ConfigError } from '../errors.js';
import { kafkaClientSecurity, kafkaSecurityFromEnv, type KafkaSecurity } from './security.js';

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  /** default: from the CAFE_STREAM_KAFKA_* environment. */
  security?: KafkaSecurity;
  /** kafkajs' own retries per request; the producer sink keeps these short because it retries with its own backoff. */
  retry?: RetryOptions;
}

export function checkBrokers(brokers: string[]): void {
  if (brokers.length === 0) throw new ConfigError('kafka', 'at least one broker (host:port) is needed');
  for (const b of brokers) if (!/^[^\s:/]+:\d{1,5}$/.test(b)) throw new ConfigError('kafka', `broker must be host:port, got ${JSON.stringify(b)}`);
}

export function newKafka(o: KafkaClientOptions): Kafka {
  checkBrokers(o.brokers);
  return new Kafka({
    clientId: o.clientId,
    brokers: o.brokers,
    connectionTimeout: 3_000,
    requestTimeout: 15_000,
    logLevel: logLevel.NOTHING,
    retry: o.retry ?? { retries: 5, initialRetryTime: 200, maxRetryTime: 2_000 },
    ...kafkaClientSecurity(o.security ?? kafkaSecurityFromEnv()),
  });
}

export interface GroupTiming {
  /** the broker declares a silent member dead after this long (default 10 s; the broker's minimum is 6 s). */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
}

/** A member of one of our consumer groups (cameras, jobs): the same timing rules, topics never auto-created. */
export function groupConsumer(kafka: Kafka, groupId: string, timing: GroupTiming, extra: Partial<ConsumerConfig> = {}): Consumer {
  const session = timing.sessionTimeoutMs ?? 10_000;
  return kafka.consumer({
    groupId,
    sessionTimeout: session,
    heartbeatInterval: timing.heartbeatIntervalMs ?? 1_000,
    rebalanceTimeout: Math.max(session, 10_000),
    allowAutoTopicCreation: false,
    ...extra,
  });
}
