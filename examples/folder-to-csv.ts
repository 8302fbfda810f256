// A folder of recordings → one CSV row per person (track) and expression segment.
//
//   npx tsx examples/folder-to-csv.ts recordings/ segments.csv [--jobs 2]
//
// One analyzer loads the models once; every file goes through its shared, batched model stage. A bad file is
// reported and skipped; the others still make their rows. Iterating with `for await` paces the analysis to the
// CSV writer, so memory stays flat however many files there are.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createAnalyzer, isCafeStreamError } from 'cafe-stream';

const [folder, out, ...rest] = process.argv.slice(2);
if (folder === undefined || out === undefined) {
  console.error('usage: folder-to-csv.ts <folder> <out.csv> [--jobs n]');
  process.exit(2);
}
const jobs = rest[0] === '--jobs' ? Number(rest[1]) : 2;

const csv = createWriteStream(out);
const write = async (cells: (string | number)[]): Promise<void> => {
  const line = cells.map((c) => (typeof c === 'number' ? String(c) : `"${c.replace(/"/g, '""')}"`)).join(',') + '\n';
  if (!csv.write(line)) await once(csv, 'drain');
};

const analyzer = createAnalyzer({ device: 'cpu' });
let failed = 0;
try {
  await write(['file', 'person', 'expression', 'start_s', 'end_s', 'observations']);
  for await (const e of analyzer.analyze(folder, { concurrency: jobs })) {
    if (e.type === 'face.segment') {
      await write([e.streamId, e.trackId, e.label, e.start, e.end, e.observations]);
    } else if (e.type === 'stream.end' && e.reason === 'error') {
      failed++;
      console.error(`skipped ${e.streamId}: ${e.error}`);
    }
  }
} catch (err) {
  // after every file ran: the first bad file's error (its code says what kind of failure)
  if (!isCafeStreamError(err)) throw err;
  console.error(`${failed} file(s) failed, first: ${err.code}`);
} finally {
  await analyzer.close();
  csv.end();
  await once(csv, 'finish');
}
console.error(`wrote ${out}`);
