// The exit guard a model thread shares with the main thread. A process that exits while one of its threads is
// inside onnxruntime's run() aborts (SIGABRT, exit 134: the binding throws a C++ Napi::Error once run() returns
// into a terminated thread), e.g. `analyze | head -1`, which exits on EPIPE at once. So the threads share a count
// of jobs in flight and a "process is exiting" flag: at exit the main thread raises the flag (no new job
// starts) and waits, bounded, until the jobs in flight are done.

const IN_FLIGHT = 0;
const EXITING = 1;

/** Int32Array over a SharedArrayBuffer: [0] jobs in flight, [1] 1 once the process exits. Pass it in workerData. */
export function createThreadGuard(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
}

/**
 * On the model thread, before a job: counts it and says whether it may run. Counted before the flag is read,
 * so the exiting main thread either waits for this job or the job never starts. Call `leaveJob` either way.
 */
export function enterJob(guard: Int32Array): boolean {
  Atomics.add(guard, IN_FLIGHT, 1);
  return Atomics.load(guard, EXITING) === 0;
}

/** On the model thread, when a job is done (or refused). */
export function leaveJob(guard: Int32Array): void {
  Atomics.sub(guard, IN_FLIGHT, 1);
  Atomics.notify(guard, IN_FLIGHT);
}

/** Called at process exit on the main thread: no new job starts, and the ones in flight get up to `ms` to finish. */
export function waitForJobsInFlight(guard: Int32Array, ms: number): void {
  Atomics.store(guard, EXITING, 1);
  const end = Date.now() + ms;
  for (let n = Atomics.load(guard, IN_FLIGHT); n > 0; n = Atomics.load(guard, IN_FLIGHT)) {
    const left = end - Date.now();
    if (left <= 0) return;
    Atomics.wait(guard, IN_FLIGHT, n, left);
  }
}

/** Jobs in flight now (for tests and the close path). */
export function jobsInFlight(guard: Int32Array): number {
  return Atomics.load(guard, IN_FLIGHT);
}
