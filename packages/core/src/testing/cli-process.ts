/**
 * The sgd-lab CLI as a child process for tests, waited on by what it prints, never by the clock:
 * `waitFor(/shard 2\//)` resolves when stderr (or stdout) first matches, and rejects when the
 * process exits before it does, with what it printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './data-dir.js';

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  /** Resolves when the output so far matches; rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<void>;
  /** Everything printed so far. */
  output(): { stdout: string; stderr: string };
  exited: Promise<CliExit>;
}

/** The built CLI's entry point. */
export const cliPath = () => join(repoRoot(), 'packages', 'core', 'dist', 'cli', 'main.js');

export function spawnCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [cliPath(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? repoRoot() });
  let stdout = '';
  let stderr = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.pattern.test(stderr) || w.pattern.test(stdout)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  child.stdout!.on('data', (d) => {
    stdout += d;
    check();
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
    check();
  });
  const exited = new Promise<CliExit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return {
    child,
    output: () => ({ stdout, stderr }),
    exited,
    waitFor(pattern) {
      return new Promise<void>((resolve, reject) => {
        if (pattern.test(stderr) || pattern.test(stdout)) return resolve();
        waiters.push({ pattern, resolve });
        void exited.then((e) => reject(new Error(`exited (${e.code ?? e.signal}) before printing ${pattern}:\n${e.stderr}\n${e.stdout}`)));
      });
    },
  };
}
