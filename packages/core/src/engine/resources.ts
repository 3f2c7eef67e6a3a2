/**
 * Resource limits, checked before any work: what a study will hold in memory and a lower bound
 * on the compute it needs, from the study and its setting's `resources` hook alone (no data loaded,
 * nothing allocated), against the study's `limits` and the machine. A study over a limit is a
 * config error (exit 2) that names the limit, the estimate and its largest parts.
 *
 * The memory estimate adds what the setting holds for the whole study (data, teacher, θ0), one
 * batched computation (a chunk of replicas at the largest b, or a whole shard for settings that do
 * not chunk), the per-block statistics of the shard in flight, the records kept for the claims and
 * the shard plan. The time bound prices every replica-step at the study's FLOPs on a peak rate no
 * machine of its kind reaches (or a floor per replica-step), so a study it refuses cannot finish
 * within the limit; studies it passes may still take longer (`sgd-lab plan` times real steps).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import type { StudyConfig } from '../config/study-config.js';
import { ConfigError } from '../errors.js';
import type { AnyPlugin } from '../plugin.js';

/**
 * Replicas per chunk so that a chunk's working set stays under the budget, in whole run blocks
 * (at least one block, even over the budget: a run block is the unit of statistics).
 */
export function chunkSizeFor(budgetBytes: number, bytesPerReplica: number, runs: number, runBlock = 1): number {
  const fit = Math.floor(budgetBytes / Math.max(1, bytesPerReplica));
  return Math.max(1, Math.min(runs, Math.max(runBlock, fit - (fit % runBlock))));
}

/** What a setting will hold and compute for a study, known from its options (plugin `resources`). */
export interface ResourceNeeds {
  /** Bytes held for the whole study, by what they are ("training images", "teacher"). */
  fixed: Record<string, number>;
  /** Bytes one replica takes in a batched computation at batch size b. */
  bytesPerReplica?(batchSize: number): number;
  /**
   * Whether replicas are computed in chunks sized by `memoryBudgetMiB` (tensor settings); without
   * chunks, every replica of a shard is held at once.
   */
  chunked?: boolean;
  /** Floating-point operations of one SGD step of one replica at b. */
  flopsPerStep?(batchSize: number): number;
  /** Steps of a shard at b, where the study counts epochs (the model's schedule). */
  steps?(batchSize: number): number;
  /** Records per recorded step (metrics x layers); default: the number of metrics. */
  recordsPerStep?: number;
}

/** The machine a study is checked against. */
export interface MachineResources {
  memoryBytes: number;
  /** Where `memoryBytes` comes from, for messages. */
  memorySource: string;
  cores: number;
  /** FLOP/s no core of this machine exceeds (fp32 FMA at full vector width and clock). */
  peakFlopsPerCore: number;
}

/** FLOP/s per core no CPU reaches: 2 AVX-512 FMA units x 16 fp32 lanes x 2 x 3.5 GHz, rounded up. */
export const CPU_PEAK_FLOPS_PER_CORE = 2.5e11;
/** FLOP/s no single GPU reaches (an H200 peaks near 6.7e13 in fp32): the bound for GPU backends. */
export const GPU_PEAK_FLOPS = 1e15;
/** Seconds no replica-step takes less than: the fastest setting here (linreg) takes about 3e-6. */
export const MIN_SECONDS_PER_REPLICA_STEP = 1e-7;
/** Bytes a kept record takes (object, strings, confidence interval). */
export const BYTES_PER_RECORD = 400;
/** Bytes of one run block's statistics for one record at one step (n, m2, m4, meanSq, sum, ...). */
export const BYTES_PER_BLOCK_STAT = 64;
/** Bytes of one planned shard. */
export const BYTES_PER_SHARD = 200;

/** The memory limit of a cgroup (v2, then v1), when one is set below the machine's memory. */
function cgroupMemory(): number | undefined {
  for (const f of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const v = Number(readFileSync(f, 'utf8').trim());
      if (Number.isFinite(v) && v > 0) return v;
    } catch {
      /* not in a cgroup with a limit */
    }
  }
  return undefined;
}

/** This machine: its (or its cgroup's) memory, cores and the CPU peak bound. */
export function thisMachine(): MachineResources {
  const total = totalmem();
  const cg = cgroupMemory();
  const limited = cg !== undefined && cg < total;
  return {
    memoryBytes: limited ? cg : total,
    memorySource: limited ? "this process's cgroup memory limit" : "this machine's memory",
    cores: availableParallelism(),
    peakFlopsPerCore: CPU_PEAK_FLOPS_PER_CORE,
  };
}

export interface ResourceEstimate {
  /** Estimated peak bytes, and its parts by name. */
  memoryBytes: number;
  memoryParts: Record<string, number>;
  /** The limit `memoryBytes` is compared with, and what it is. */
  memoryLimitBytes: number;
  memoryLimitName: string;
  shards: number;
  replicaSteps: number;
  records: number;
  /** Seconds the study takes at least on the machine (all its cores at peak). */
  secondsAtLeast: number;
  /** Bytes of one run block of replicas at the largest b, where the setting says. */
  blockBytes?: number;
}

const MiB = 2 ** 20;

/** `limits.hours`, also for studies built in code without defaults. */
function limitHours(study: StudyConfig): number {
  return study.limits?.hours ?? 720;
}

/** Bytes as a short number with a unit. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n >= 100 || u === 0 ? n.toFixed(0) : n.toPrecision(3)} ${units[u]}`;
}

/** A count in full below a million, else in powers of ten. */
function count(n: number): string {
  return n < 1e6 ? n.toLocaleString('en-US') : n.toExponential(2);
}

function formatHours(s: number): string {
  const h = s / 3600;
  return h >= 1e6 ? `${h.toExponential(2)} h` : h >= 10 ? `${h.toFixed(0)} h` : `${h.toPrecision(2)} h`;
}

/**
 * The estimate of a study (or of one shard of it: `study` with that shard's b, runs and one
 * initial point) on `machine`.
 */
export function estimateResources(study: StudyConfig, needs: ResourceNeeds | undefined, machine: MachineResources, opts: { gpu?: boolean; metrics?: number } = {}): ResourceEstimate {
  const bs = study.batchSizes;
  const maxB = Math.max(...bs);
  const per = Math.min(study.runsPerShard ?? study.runs, study.runs);
  const shardsPerB = Math.ceil(study.runs / per);
  const shards = study.initPoints * bs.length * shardsPerB;
  const stepsAt = (b: number) => needs?.steps?.(b) ?? study.steps ?? study.epochs ?? 0;
  let replicaSteps = 0;
  let flops = 0;
  let records = 0;
  let blockStats = 0;
  const perStep = needs?.recordsPerStep ?? Math.max(1, opts.metrics ?? 1);
  for (const b of bs) {
    const steps = stepsAt(b);
    const rs = study.initPoints * study.runs * steps;
    replicaSteps += rs;
    flops += rs * (needs?.flopsPerStep?.(b) ?? 0);
    const recorded = Math.ceil(steps / study.recordEvery) + 1;
    records += study.initPoints * recorded * perStep;
    blockStats = Math.max(blockStats, recorded * Math.ceil(per / study.runBlock) * perStep * BYTES_PER_BLOCK_STAT);
  }
  const parts: Record<string, number> = { ...(needs?.fixed ?? {}) };
  let blockBytes: number | undefined;
  if (needs?.bytesPerReplica) {
    const one = needs.bytesPerReplica(maxB);
    blockBytes = one * Math.min(study.runBlock, per);
    if (needs.chunked) {
      const chunk = chunkSizeFor(study.memoryBudgetMiB * MiB, one, per, study.runBlock);
      parts[`one chunk of ${chunk} replicas at b = ${maxB}`] = chunk * one;
    } else {
      parts[`${per} replicas of a shard at b = ${maxB}`] = per * one;
    }
  }
  parts['run-block statistics of a shard'] = blockStats;
  parts[`${count(records)} records kept for the claims`] = records * BYTES_PER_RECORD;
  parts[`the plan of ${shards} shards`] = shards * BYTES_PER_SHARD;
  const memoryBytes = Object.values(parts).reduce((a, b) => a + b, 0);
  const limited = study.limits?.memoryMiB !== undefined && study.limits.memoryMiB * MiB < machine.memoryBytes;
  const rate = opts.gpu ? GPU_PEAK_FLOPS : machine.cores * machine.peakFlopsPerCore;
  const secondsAtLeast = Math.max(flops / rate, replicaSteps * MIN_SECONDS_PER_REPLICA_STEP / machine.cores);
  return {
    memoryBytes,
    memoryParts: parts,
    memoryLimitBytes: limited ? study.limits.memoryMiB! * MiB : machine.memoryBytes,
    memoryLimitName: limited ? '/limits/memoryMiB' : machine.memorySource,
    shards,
    replicaSteps,
    records,
    secondsAtLeast,
    blockBytes,
  };
}

/** The problems of an estimate, one line each naming the limit (empty: within every limit). */
export function resourceProblems(study: StudyConfig, e: ResourceEstimate, opts: { checkTime?: boolean } = {}): string[] {
  const problems: string[] = [];
  if (e.blockBytes !== undefined && e.blockBytes > study.memoryBudgetMiB * MiB) {
    problems.push(
      `/memoryBudgetMiB: one run block of ${Math.min(study.runBlock, study.runs)} replicas at b = ${Math.max(...study.batchSizes)} needs ${formatBytes(e.blockBytes)}, ` +
        `above the budget of ${study.memoryBudgetMiB} MiB for one batched computation; raise memoryBudgetMiB, or lower the largest b, the model's size or runBlock`,
    );
  }
  if (!(e.memoryBytes <= e.memoryLimitBytes)) {
    const top = Object.entries(e.memoryParts)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([k, v]) => `${k}: ${formatBytes(v)}`)
      .join('; ');
    const field = e.memoryLimitName.startsWith('/') ? e.memoryLimitName : '/limits/memoryMiB';
    const what = e.memoryLimitName.startsWith('/') ? `the limit ${study.limits?.memoryMiB} MiB` : `${e.memoryLimitName} (${formatBytes(e.memoryLimitBytes)})`;
    problems.push(`${field}: the study needs about ${formatBytes(e.memoryBytes)} of memory (${top}), more than ${what}; make the study smaller or split it with runsPerShard`);
  }
  if (opts.checkTime !== false && !(e.secondsAtLeast <= limitHours(study) * 3600)) {
    problems.push(
      `/limits/hours: ${count(e.replicaSteps)} replica-steps take at least ${formatHours(e.secondsAtLeast)} on this machine at its peak rate, ` +
        `above the limit of ${limitHours(study)} h; make the study smaller, run it on workers (--redis), or raise limits.hours if that is intended (\`sgd-lab plan\` estimates the real time)`,
    );
  }
  return problems;
}

/** Throws a ConfigError (exit 2) when the study is over a limit. */
export function checkResources(study: StudyConfig, needs: ResourceNeeds | undefined, machine: MachineResources, opts: { gpu?: boolean; metrics?: number; checkTime?: boolean } = {}): ResourceEstimate {
  const e = estimateResources(study, needs, machine, opts);
  const problems = resourceProblems(study, e, opts);
  if (problems.length) throw new ConfigError(`study ${study.name}`, problems);
  return e;
}

/**
 * The check every host runs before a study (or a worker before a shard, `study` then that shard's
 * study): the setting's `resources` against `machine`, the GPU bound for webgpu, the setting's
 * metrics for the record count.
 */
export function checkPluginResources(plugin: AnyPlugin, study: StudyConfig, dataDir: string, machine: MachineResources = thisMachine(), opts: { checkTime?: boolean } = {}): ResourceEstimate {
  return checkResources(study, plugin.resources?.(study, { dataDir }), machine, {
    gpu: study.backend === 'webgpu',
    metrics: study.metrics.length || plugin.metrics.length,
    checkTime: opts.checkTime,
  });
}
