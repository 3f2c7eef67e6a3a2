import { ConfigError, DataError } from '../errors.js';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fs, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';

/**
 * The largest data file read whole: 512 MiB, about the longest string Node can hold (text files
 * are decoded into one string). Larger data sets are read by their own loaders, in parts.
 */
export const MAX_DATA_FILE_BYTES = 512 * 2 ** 20;

/**
 * Reads a data file whole, after checking that it is a regular file (not a folder, device such as
 * /dev/zero, or pipe) of at most `maxBytes`. Errors are DataErrors naming the file (exit 3).
 */
export function readDataFile(path: string, maxBytes = MAX_DATA_FILE_BYTES): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new DataError(path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (!st.isFile()) throw new DataError(path, 'is not a regular file (a folder, a device or a pipe): give the path of a data file');
  if (st.size > maxBytes) throw new DataError(path, `is ${st.size} bytes, above the ${maxBytes} bytes one data file may have`);
  return readFileSync(path);
}

/**
 * `path` resolved inside `root` (relative paths against it), following symbolic links; anything
 * that ends outside is a ConfigError naming `field` (exit 2). Hosts running others' studies use it.
 */
export function confinedPath(root: string, path: string, field: string): string {
  const base = realpathSync(resolve(root));
  const full = resolve(base, path);
  let real = full;
  if (existsSync(full)) real = realpathSync(full);
  const rel = relative(base, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new ConfigError('job', [`${field}: "${path}" is outside this worker's --data-dir (${base}); a job may name files inside it only, as paths relative to it`]);
  }
  return real;
}

/** sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Flushes a written file to disk (fsync), so that a rename after it never exposes half of it. */
export async function syncFile(path: string): Promise<void> {
  const handle = await fs.open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` by `written` (a finished sibling): synced, then renamed, so that after a crash
 * the path holds the old or the new content, whole.
 */
export async function replaceWith(written: string, path: string): Promise<void> {
  await syncFile(written);
  await fs.rename(written, path);
}

/** Writes a file atomically: a temporary sibling, synced, then renamed, so readers never see half a file. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await fs.writeFile(tmp, data);
  await replaceWith(tmp, path);
}

/** The git commit of the working directory, with a dirty flag; undefined outside a repository. */
export function gitCommit(cwd = process.cwd()): { commit: string; dirty: boolean } | undefined {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return undefined;
  }
}
