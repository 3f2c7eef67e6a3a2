/**
 * An exclusive lock on a results folder for the whole of a run: `<out>/.sgd-lab.lock`, created
 * with O_EXCL so that of two runs into one folder exactly one proceeds. It holds the owner's pid,
 * host and start time; a lock whose process is gone (same host, no such pid) is stale and taken
 * over. Released when the run ends, and on process exit.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';

export const LOCK_FILE = '.sgd-lab.lock';

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface ResultsLock {
  /** Whether a stale lock (its process gone) was taken over, and whose it was. */
  tookOver?: LockInfo;
  release(): void;
}

/**
 * mkdir -p, one level at a time from the nearest existing ancestor. Node's own recursive mkdir
 * loops forever where the kernel answers ENOENT for a parent that exists (`/proc/x`).
 */
export function makeFolders(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing.reverse()) mkdirSync(d);
  if (!statSync(dir).isDirectory()) throw Object.assign(new Error(`${dir} is not a folder`), { code: 'ENOTDIR' });
}

/** Takes the lock of `outDir` (creating the folder), or throws a UsageError (exit 2) naming its holder. */
export function lockResults(outDir: string, command = 'run'): ResultsLock {
  try {
    makeFolders(outDir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'a file is in the way' : code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? `no folder can be created there: ${code}` : (code ?? String(e));
    throw new UsageError(`--out: ${outDir} cannot be a results folder (${why})`, command);
  }
  const file = join(outDir, LOCK_FILE);
  let tookOver: LockInfo | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let held: LockInfo | undefined;
      try {
        held = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
      } catch {
        // Being written this instant by its owner, or unreadable: try again, then give up.
        held = undefined;
      }
      if (held && held.host === hostname() && !alive(held.pid)) {
        rmSync(file, { force: true });
        tookOver = held;
        continue;
      }
      const who = held ? `process ${held.pid} on ${held.host} since ${held.startedAt}` : 'another process';
      throw new UsageError(`--out: ${outDir} is in use by ${who} (${file}); wait for it to finish, or choose another --out. If that process is gone, delete the lock file.`, command);
    }
    const info: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
    writeSync(fd, JSON.stringify(info) + '\n');
    closeSync(fd);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      process.off('exit', release);
      try {
        const now = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
        if (now.pid === process.pid) rmSync(file, { force: true });
      } catch {
        // Already gone.
      }
    };
    process.on('exit', release);
    return { tookOver, release };
  }
  throw new UsageError(`--out: could not take the lock ${file}; another run keeps taking it`, command);
}
