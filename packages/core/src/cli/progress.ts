/**
 * Progress of a study, wherever it runs: on a terminal a bar (cli-progress) with the overall
 * percentage across shards, elapsed time, ETA and replica-steps per second; off a terminal (CI,
 * `| tee`, `npm start` under a log) one line at most every `intervalMs` on stderr. Every line also
 * goes to the study's log file, so `sgd-lab.log` tells how a run went after the fact.
 */
import cliProgress from 'cli-progress';
import type { MetricObserver } from '../engine/records.js';

/** 3725 s -> "1h 02m", 125 s -> "2m 05s", 9 s -> "9s"; days past 48 h. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 9.95) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  if (s >= 48 * 3600) return `${d}d ${two(h)}h`;
  if (s >= 3600) return `${d * 24 + h}h ${two(m)}m`;
  if (s >= 60) return `${m}m ${two(sec)}s`;
  return `${sec}s`;
}

/** 12345.6 -> "12,346"; 1.5e6 -> "1.50M". */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '?';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  return Math.round(perSecond).toLocaleString('en-US');
}

export type ProgressMode = 'bar' | 'lines' | 'off';

export interface ProgressOptions {
  /** `bar` on a terminal, `lines` elsewhere, `off` for nothing on stderr (the log still gets lines). */
  mode: ProgressMode;
  /** Where bars and lines go (stderr). */
  stream?: NodeJS.WritableStream;
  /** Receives every progress line for the log file (and, in `lines` mode, nothing else needs it). */
  log?: (line: string) => void;
  /** At most one line per interval (ms); the first and the last line always. */
  intervalMs?: number;
  /** Clock in ms (tests pass a fake one). */
  now?: () => number;
  /** Label of the study in lines (its name). */
  label?: string;
}

/** What the progress display knows at one moment. */
export interface ProgressSnapshot {
  fraction: number;
  doneReplicaSteps: number;
  plannedReplicaSteps: number;
  elapsedSeconds: number;
  etaSeconds: number;
  replicaStepsPerSecond: number;
  shard: number;
  shards: number;
  batchSize: number;
  initPoint: number;
  step: number;
  steps: number;
}

/** The one-line form of a snapshot, as written off a terminal and into the log. */
export function progressLine(label: string, p: ProgressSnapshot): string {
  return (
    `[${label}] ${(100 * p.fraction).toFixed(1)}% | shard ${p.shard}/${p.shards} (b=${p.batchSize}, init ${p.initPoint}) step ${p.step}/${p.steps}` +
    ` | elapsed ${formatDuration(p.elapsedSeconds)} | ETA ${formatDuration(p.etaSeconds)} | ${formatRate(p.replicaStepsPerSecond)} replica-steps/s`
  );
}

export function progressObserver(opts: ProgressOptions): MetricObserver {
  const now = opts.now ?? (() => performance.now());
  const stream = opts.stream ?? process.stderr;
  const interval = opts.intervalMs ?? 10_000;
  let label = opts.label ?? 'study';
  let planned = 0;
  let shards = 0;
  let shardIndex = 0;
  let doneBefore = 0; // replica-steps of finished shards
  let computed = 0; // replica-steps computed in this process (not replayed from disk), for the rate
  let computedBefore = 0;
  let started = 0;
  let lastLine = -Infinity;
  let current = { b: 0, ip: 0, runs: 0, steps: 0, step: 0 };
  let bar: cliProgress.SingleBar | undefined;

  const snapshot = (): ProgressSnapshot => {
    const done = doneBefore + current.step * current.runs;
    const elapsed = (now() - started) / 1000;
    const rate = computed / Math.max(elapsed, 1e-3);
    return {
      fraction: planned > 0 ? Math.min(1, done / planned) : 0,
      doneReplicaSteps: done,
      plannedReplicaSteps: planned,
      elapsedSeconds: elapsed,
      etaSeconds: rate > 0 ? (planned - done) / rate : NaN,
      replicaStepsPerSecond: rate,
      shard: shardIndex,
      shards,
      batchSize: current.b,
      initPoint: current.ip,
      step: current.step,
      steps: current.steps,
    };
  };
  const emitLine = (force: boolean) => {
    const t = now();
    if (!force && t - lastLine < interval) return;
    lastLine = t;
    const line = progressLine(label, snapshot());
    opts.log?.(line);
    if (opts.mode === 'lines') stream.write(line + '\n');
  };
  const redraw = () => {
    if (!bar) return;
    const p = snapshot();
    bar.update(Math.round(p.doneReplicaSteps), {
      where: `shard ${p.shard}/${p.shards} b=${p.batchSize} init ${p.initPoint} step ${p.step}/${p.steps}`,
      elapsedText: formatDuration(p.elapsedSeconds),
      etaText: formatDuration(p.etaSeconds),
      rate: formatRate(p.replicaStepsPerSecond),
    });
  };

  return {
    studyStart(e) {
      label = opts.label ?? e.study;
      planned = e.plannedReplicaSteps;
      shards = e.plannedShards;
      started = now();
      if (opts.mode === 'bar') {
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: ' {bar} {percentage}% | {where} | elapsed {elapsedText} | ETA {etaText} | {rate} replica-steps/s',
            hideCursor: false,
            clearOnComplete: true,
            barsize: 24,
            etaBuffer: 1,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(1, planned), 0, { where: 'starting', elapsedText: '0s', etaText: '?', rate: '?' });
      }
    },
    shardStart(e) {
      shardIndex++;
      current = { b: e.batchSize, ip: e.initPoint, runs: e.runCount, steps: e.steps, step: 0 };
      computedBefore = computed;
      redraw();
      emitLine(shardIndex === 1);
    },
    progress(e) {
      current.step = e.step;
      computed = computedBefore + e.step * e.runCount;
      redraw();
      emitLine(false);
    },
    shardEnd(e) {
      // A shard read back from disk (a resumed run) counts as done, not as speed.
      if (!e.reused) computed = computedBefore + current.steps * current.runs;
      doneBefore += current.steps * current.runs;
      current.step = 0;
      current.runs = 0;
      redraw();
      emitLine(shardIndex === shards);
    },
    studyEnd(e) {
      bar?.stop();
      bar = undefined;
      const line = `[${label}] ${e.status} in ${formatDuration(e.seconds)}: ${Math.round(doneBefore).toLocaleString('en-US')} replica-steps in ${shards} shards`;
      opts.log?.(line);
      if (opts.mode === 'lines') stream.write(line + '\n');
    },
    close() {
      bar?.stop();
      bar = undefined;
    },
  };
}
