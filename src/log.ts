// Structured logs for the long-running commands: pino, one JSON object per line on stderr (stdout stays free
// for events or the live timeline). LOG_LEVEL overrides the level (trace|debug|info|warn|error|fatal|silent).
import { pino, type Logger } from 'pino';

export function createLogger(name: string, level = process.env['LOG_LEVEL'] ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
