import { createFileSource } from '../src/ingest/file-source.js';
for (let k = 0; k < 2; k++) {
const t0 = performance.now();
const ms = () => (performance.now() - t0).toFixed(0);
const src = createFileSource({ path: '.cache/bench/grid-4x4-320-5.3s-v2.mp4', sampleFps: 5, maxPending: 24 });
await src.info(); console.log('probed', ms());
let n = 0;
await new Promise<void>((res) => src.frames().subscribe({ next: (f) => { n++; if (n <= 1 || n % 27 === 0) console.log('frame', n, ms()); src.release(f); }, complete: () => { console.log('done', ms()); res(); } }));
}
