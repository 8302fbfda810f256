// What a file holds, told from its first bytes rather than its name: a `.bmp` photo, a JPEG without an
// extension and a video named `.jpg` all go to the decoder that can read them. Only when the bytes say nothing
// (an empty or unknown file) does the extension decide, so the error names what the user meant to give.
import { open } from 'node:fs/promises';
import { extname } from 'node:path';

export type MediaKind = 'photo' | 'video' | 'unknown';

/** Extensions taken as photos when the content does not say (empty or unrecognised files). */
export const PHOTO_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.avif', '.gif', '.bmp'];
export const VIDEO_EXTENSIONS = ['.mp4', '.mov', '.m4v', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.ts', '.mts', '.m2ts', '.wmv', '.flv', '.3gp'];

const HEAD_BYTES = 400;

const ascii = (b: Buffer, at: number, s: string): boolean => b.length >= at + s.length && b.toString('latin1', at, at + s.length) === s;
const bytes = (b: Buffer, at: number, xs: number[]): boolean => xs.every((x, i) => b[at + i] === x);

/** The kind of media these leading bytes start, or 'unknown'. */
export function kindOfBytes(b: Buffer): MediaKind {
  if (bytes(b, 0, [0xff, 0xd8, 0xff])) return 'photo'; // JPEG
  if (bytes(b, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'photo'; // PNG
  if (ascii(b, 0, 'GIF87a') || ascii(b, 0, 'GIF89a')) return 'photo';
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'WEBP')) return 'photo';
  if (ascii(b, 0, 'II*\u0000') || ascii(b, 0, 'MM\u0000*')) return 'photo'; // TIFF
  if (ascii(b, 0, 'BM') && b.length >= 18 && [12, 40, 52, 56, 64, 108, 124].includes(b.readUInt32LE(14))) return 'photo'; // BMP: header size
  if (ascii(b, 4, 'ftyp')) {
    const brand = b.toString('latin1', 8, 12);
    return brand === 'avif' || brand === 'avis' || brand === 'heic' || brand === 'heix' || brand === 'mif1' ? 'photo' : 'video';
  }
  if (bytes(b, 0, [0x1a, 0x45, 0xdf, 0xa3])) return 'video'; // Matroska / WebM
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'AVI ')) return 'video';
  if (ascii(b, 0, 'FLV')) return 'video';
  if (bytes(b, 0, [0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11])) return 'video'; // ASF / WMV
  if (bytes(b, 0, [0x00, 0x00, 0x01, 0xba]) || bytes(b, 0, [0x00, 0x00, 0x01, 0xb3])) return 'video'; // MPEG-PS / ES
  if (b[0] === 0x47 && b[188] === 0x47) return 'video'; // MPEG-TS: sync byte every 188 bytes
  if (ascii(b, 4, 'moov') || ascii(b, 4, 'mdat') || ascii(b, 4, 'wide') || ascii(b, 4, 'free')) return 'video'; // QuickTime without ftyp
  return 'unknown';
}

/** Reads the file's first bytes; 'unknown' for unreadable, empty or unrecognised files (their decoder says why). */
export async function sniffMedia(path: string): Promise<MediaKind> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return 'unknown';
  }
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(buf, 0, HEAD_BYTES, 0);
    return kindOfBytes(buf.subarray(0, bytesRead));
  } catch {
    return 'unknown';
  } finally {
    await fh.close();
  }
}

/** Photo or video: by content, and by extension only when the content is not recognised. */
export async function mediaKind(path: string): Promise<'photo' | 'video'> {
  const kind = await sniffMedia(path);
  if (kind !== 'unknown') return kind;
  return PHOTO_EXTENSIONS.includes(extname(path).toLowerCase()) ? 'photo' : 'video';
}
