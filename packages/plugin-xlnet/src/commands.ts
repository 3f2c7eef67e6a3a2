/**
 * `sgd-lab data fetch yelp [--data-dir d] [--url u | --file archive.tgz]`: downloads the public
 * Yelp Review Polarity archive (yelp_review_polarity_csv.tgz, about 166 MB) and extracts
 * train.csv, test.csv and readme.txt into <data-dir>/yelp_review_polarity_csv, streaming (the
 * CSVs are about 460 MB). There is no published checksum: each CSV is checked by parsing its
 * first rows, and every study records the sha256 of the files it read in its manifest.
 */
import { createWriteStream, createReadStream, existsSync, mkdirSync, renameSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DataError, type CliCommand } from '@sgd-lab/core';
import { POLARITY_DIR, parsePolarityCsv } from './data.js';

export const YELP_POLARITY_URL = 'https://s3.amazonaws.com/fast-ai-nlp/yelp_review_polarity_csv.tgz';
const WANTED = new Set(['train.csv', 'test.csv', 'readme.txt']);

/**
 * A writable that reads a tar stream and writes the wanted regular files (by base name) into
 * `dir`, each through a .part file renamed when complete.
 */
export function tarExtractor(dir: string, wanted: Set<string>, extracted: string[]): Writable {
  let buf: Buffer = Buffer.alloc(0);
  let file: { name: string; left: number; pad: number; out?: ReturnType<typeof createWriteStream> } | undefined;
  let ended = false;
  const finishFile = async () => {
    const f = file!;
    file = undefined;
    if (f.out) {
      await new Promise<void>((res, rej) => f.out!.end((e?: Error | null) => (e ? rej(e) : res())));
      renameSync(join(dir, `${f.name}.part`), join(dir, f.name));
      extracted.push(join(dir, f.name));
    }
  };
  return new Writable({
    async write(chunk: Buffer, _enc, done) {
      try {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        while (!ended) {
          if (file) {
            if (file.left > 0) {
              if (buf.length === 0) break;
              const n = Math.min(file.left, buf.length);
              if (file.out && !file.out.write(buf.subarray(0, n))) await new Promise<void>((r) => file!.out!.once('drain', () => r()));
              file.left -= n;
              buf = buf.subarray(n);
              continue;
            }
            if (buf.length < file.pad) break;
            buf = buf.subarray(file.pad);
            await finishFile();
            continue;
          }
          if (buf.length < 512) break;
          const header = buf.subarray(0, 512);
          buf = buf.subarray(512);
          if (header.every((b) => b === 0)) {
            ended = true;
            break;
          }
          const str = (a: number, b: number) => header.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
          const size = parseInt(str(124, 136).trim() || '0', 8);
          if (!Number.isFinite(size)) throw new Error('corrupt tar header (size)');
          const name = (str(345, 500) ? `${str(345, 500)}/` : '') + str(0, 100);
          const type = String.fromCharCode(header[156] || 48);
          const base = name.split('/').filter(Boolean).at(-1) ?? '';
          const keep = (type === '0' || type === '\0') && wanted.has(base);
          file = { name: base, left: size, pad: (512 - (size % 512)) % 512, out: keep ? createWriteStream(join(dir, `${base}.part`)) : undefined };
        }
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    async final(done) {
      try {
        if (file && file.left === 0) await finishFile();
        if (file) throw new Error(`the archive ends inside ${file.name}`);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}

/** Downloads (or reads) the archive and extracts it; checks both CSVs. Returns the files written. */
export async function fetchYelp(dataDir: string, o: { url?: string; file?: string; log?: (s: string) => void } = {}): Promise<string[]> {
  const dir = join(dataDir, POLARITY_DIR);
  mkdirSync(dir, { recursive: true });
  const log = o.log ?? (() => {});
  let source: Readable;
  const where = o.file ?? o.url ?? YELP_POLARITY_URL;
  if (o.file) {
    if (!existsSync(o.file)) throw new DataError(o.file, 'archive not found');
    source = createReadStream(o.file);
  } else {
    log(`downloading ${where}`);
    let res: Response;
    try {
      res = await fetch(where);
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    } catch (e) {
      throw new DataError(join(dir, 'train.csv'), `download from ${where} failed (${(e as Error).message}); download yelp_review_polarity_csv.tgz elsewhere and run \`sgd-lab data fetch yelp --file <archive>\``);
    }
    source = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  }
  const extracted: string[] = [];
  try {
    await pipeline(source, createGunzip(), tarExtractor(dir, WANTED, extracted));
  } catch (e) {
    for (const f of WANTED) rmSync(join(dir, `${f}.part`), { force: true });
    throw new DataError(where, `not a readable .tgz of the Yelp polarity CSVs (${(e as Error).message})`);
  }
  for (const name of ['train.csv', 'test.csv']) {
    const path = join(dir, name);
    if (!existsSync(path)) throw new DataError(where, `the archive holds no ${name}`);
    // The first rows must parse (a 64 KiB head, cut at the last complete line).
    const head = readFileSync(path).subarray(0, 1 << 16).toString('utf8');
    parsePolarityCsv(head.slice(0, head.lastIndexOf('\n') + 1) || head, path, 50);
  }
  log(`extracted ${extracted.length} files into ${dir}`);
  return extracted;
}

export const commands: Record<string, CliCommand> = {
  'data fetch yelp': {
    description: 'download Yelp Review Polarity (or extract a copy of its .tgz) into <data-dir>/yelp_review_polarity_csv',
    options: [
      { flags: '--data-dir <dir>', description: 'data directory (default: $SGD_LAB_DATA_DIR, else ./data)' },
      { flags: '--url <url>', description: 'where to download the archive from', default: YELP_POLARITY_URL },
      { flags: '--file <archive.tgz>', description: 'extract this local archive instead of downloading' },
    ],
    async run(_args, o) {
      const dataDir = resolve((o.dataDir as string | undefined) ?? process.env.SGD_LAB_DATA_DIR ?? 'data');
      const files = await fetchYelp(dataDir, { url: o.url as string | undefined, file: o.file as string | undefined, log: (s) => process.stderr.write(s + '\n') });
      process.stdout.write(`${files.length} files in ${join(dataDir, POLARITY_DIR)}\n`);
      return 0;
    },
  },
};

export default commands;
