/**
 * `sgd-lab data fetch mnist [--data-dir d] [--mirror url]`: downloads the four IDX files into
 * <data-dir>/mnist and checks each against its published sha256; a mismatch deletes the file and
 * fails. Needs a network; on machines without one, copy the files instead.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataError, type CliCommand } from '@sgd-lab/core';
import { MNIST_DIR, MNIST_FILES } from './data.js';

/** The gzipped files' sha256 (byte-identical to the original distribution). */
export const MNIST_SHA256: Record<string, string> = {
  [`${MNIST_FILES.trainImages}.gz`]: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
  [`${MNIST_FILES.trainLabels}.gz`]: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
  [`${MNIST_FILES.testImages}.gz`]: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
  [`${MNIST_FILES.testLabels}.gz`]: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
};

/** A public mirror of the original files (the original host requires a login now). */
export const DEFAULT_MIRROR = 'https://storage.googleapis.com/cvdf-datasets/mnist/';

/** Downloads and verifies every file; returns the paths written. Existing verified files are kept. */
export async function fetchMnist(dataDir: string, mirror = DEFAULT_MIRROR, log: (s: string) => void = () => {}): Promise<string[]> {
  const dir = join(dataDir, MNIST_DIR);
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, expected] of Object.entries(MNIST_SHA256)) {
    const target = join(dir, name);
    const url = new URL(name, mirror.endsWith('/') ? mirror : `${mirror}/`).href;
    if (existsSync(target)) {
      const { readFileSync } = await import('node:fs');
      if (createHash('sha256').update(readFileSync(target)).digest('hex') === expected) {
        log(`${target}: present, sha256 verified`);
        written.push(target);
        continue;
      }
    }
    log(`${url} -> ${target}`);
    let body: Buffer;
    try {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      throw new DataError(target, `download from ${url} failed (${(e as Error).message}); copy the file by hand instead`);
    }
    const got = createHash('sha256').update(body).digest('hex');
    if (got !== expected) throw new DataError(target, `sha256 mismatch: expected ${expected}, got ${got}; the download was discarded`);
    const tmp = `${target}.part`;
    writeFileSync(tmp, body);
    renameSync(tmp, target);
    written.push(target);
  }
  return written;
}

export const commands: Record<string, CliCommand> = {
  'data fetch mnist': {
    description: 'download the four MNIST IDX files into <data-dir>/mnist and check every sha256',
    options: [
      { flags: '--data-dir <dir>', description: 'data directory (default: $SGD_LAB_DATA_DIR, else ./data)' },
      { flags: '--mirror <url>', description: 'where to download from', default: DEFAULT_MIRROR },
    ],
    async run(_args, o) {
      const dataDir = resolve((o.dataDir as string | undefined) ?? process.env.SGD_LAB_DATA_DIR ?? 'data');
      const files = await fetchMnist(dataDir, (o.mirror as string | undefined) ?? DEFAULT_MIRROR, (s) => process.stderr.write(s + '\n'));
      process.stdout.write(`${files.length} files verified in ${join(dataDir, MNIST_DIR)}\n`);
      return 0;
    },
  },
};

export default commands;
