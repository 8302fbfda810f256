// Inputs as the user names them (files, folders, several of each) → the files to analyse, each with a unique
// stream id. Folders are read one level deep, in name order; an entry is kept when its content is a photo or a
// video (sniff.ts), or, when the content is not recognised, when its extension names one (so an empty or
// damaged `clip.mp4` is reported rather than silently skipped). Other files and sub-folders are counted.
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { PHOTO_EXTENSIONS, VIDEO_EXTENSIONS, sniffMedia } from './sniff.js';

export interface InputItem {
  path: string;
  streamId: string;
}

/** True when the inputs are several files, or a folder. */
export function isMultiInput(inputs: readonly string[]): boolean {
  if (inputs.length !== 1) return true;
  try {
    return statSync(inputs[0]!).isDirectory();
  } catch {
    return false; // a missing file: reported when it is opened
  }
}

async function isMediaFile(path: string): Promise<boolean> {
  const kind = await sniffMedia(path);
  if (kind !== 'unknown') return true;
  const ext = extname(path).toLowerCase();
  return PHOTO_EXTENSIONS.includes(ext) || VIDEO_EXTENSIONS.includes(ext);
}

/** Inputs → files, folders expanded one level deep; unique stream ids. */
export async function expandInputs(inputs: readonly string[]): Promise<{ items: InputItem[]; skipped: number }> {
  const items: InputItem[] = [];
  const used = new Set<string>();
  let skipped = 0;
  const push = (path: string, id: string): void => {
    let streamId = id;
    for (let k = 2; used.has(streamId); k++) streamId = `${id}#${k}`;
    used.add(streamId);
    items.push({ path, streamId });
  };
  for (const input of inputs) {
    let dir = false;
    try {
      dir = statSync(input).isDirectory();
    } catch {
      // missing: kept, so it is reported like any bad file
    }
    if (!dir) {
      push(input, basename(input));
      continue;
    }
    for (const e of readdirSync(input, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const path = join(input, e.name);
      if (e.isFile() && (await isMediaFile(path))) push(path, inputs.length === 1 ? e.name : `${basename(input)}/${e.name}`);
      else skipped++;
    }
  }
  return { items, skipped };
}
