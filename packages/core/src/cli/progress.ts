import type { MetricObserver } from '../engine/records.js';

/**
 * Live progress on stderr: per (b, initial point) steps done, replica-steps per second and ETA of
 * the study. Only on a terminal; one redrawn line.
 */
export function progressObserver(stream: NodeJS.WriteStream = process.stderr): MetricObserver {
  let planned = 0;
  let done = 0;
  let shardStartDone = 0;
  let started = 0;
  let current = { b: 0, ip: 0, runs: 0, steps: 0 };
  const draw = (step: number) => {
    const elapsed = (performance.now() - started) / 1000;
    const total = shardStartDone + step;
    const rate = total / Math.max(elapsed, 1e-3);
    const eta = rate > 0 ? (planned - total) / rate : NaN;
    stream.write(
      `\r\x1b[K b=${current.b} init=${current.ip}: step ${step}/${current.steps}  ` +
        `${Math.round(rate * current.runs).toLocaleString('en-US')} replica-steps/s  ETA ${Number.isFinite(eta) ? `${Math.ceil(eta)}s` : '?'}`,
    );
  };
  return {
    studyStart(e) {
      planned = e.plannedSteps;
      started = performance.now();
    },
    shardStart(e) {
      current = { b: e.batchSize, ip: e.initPoint, runs: e.runCount, steps: e.steps };
      shardStartDone = done;
    },
    progress(e) {
      draw(e.step);
    },
    shardEnd() {
      done = shardStartDone + current.steps;
    },
    close() {
      stream.write('\r\x1b[K');
    },
  };
}
