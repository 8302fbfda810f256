// What the network sinks log through: pino's (obj, msg) shape, so `serve` passes its pino logger and `analyze`
// passes one-line human messages (lineLog) that sit between its progress bar and its summary.
export interface SinkLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** `cafe-stream: kafka: send failed, … (topic=x err=…)` on stderr. */
export function lineLog(write: (line: string) => void = (l) => process.stderr.write(l)): SinkLog {
  const fmt = (obj: object, msg: string): string => {
    const kv = Object.entries(obj)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `cafe-stream: ${msg}${kv ? ` (${kv})` : ''}\n`;
  };
  return { info: (o, m) => write(fmt(o, m)), warn: (o, m) => write(fmt(o, m)) };
}
