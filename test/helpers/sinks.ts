// A sink that keeps events in memory, for pipeline tests.
import type { Sink, TimelineEvent } from '../../src/types.js';

export interface MemorySink extends Sink {
  events: TimelineEvent[];
}

export function memorySink(): MemorySink {
  const events: TimelineEvent[] = [];
  return {
    name: 'memory',
    events,
    write: async (e) => {
      events.push(e);
    },
    flush: async () => undefined,
    close: async () => undefined,
    stats: () => ({ sent: events.length, buffered: 0, dropped: 0 }),
  };
}
