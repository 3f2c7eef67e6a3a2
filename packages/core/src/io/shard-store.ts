/**
 * Finished shards on disk: `<out>/shards/b<b>-i<initPoint>-r<runStart>-n<runCount>.json`, each
 * written atomically when its shard ends, so a study killed at any moment resumes with only the
 * unfinished shards and ends with the same metrics as an uninterrupted run. Moments keep their
 * float64 values exactly through JSON.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { BlockMoments, ShardSpec } from '../engine/contracts.js';
import type { ShardResult, ShardStore, StepStats } from '../engine/run-study.js';
import type { RunMoments } from '../stats/across-runs.js';
import { writeFileAtomic } from './files.js';

export const SHARD_DIR = 'shards';

export function shardFileName(s: ShardSpec): string {
  return `b${s.batchSize}-i${s.initPoint}-r${s.runStart}-n${s.runCount}.json`;
}

type JsonMoments = { n: number; mean: number[]; m2: number; m4: number };
const toJson = (m: RunMoments): JsonMoments => ({ n: m.n, mean: Array.from(m.mean), m2: m.m2, m4: m.m4 });
const fromJson = (m: JsonMoments): RunMoments => ({ n: m.n, mean: Float64Array.from(m.mean), m2: m.m2, m4: m.m4 });
const blockToJson = (b?: BlockMoments) => b && { all: toJson(b.all), blocks: b.blocks && Object.fromEntries(Object.entries(b.blocks).map(([k, v]) => [k, toJson(v)])) };
const blockFromJson = (b?: { all: JsonMoments; blocks?: Record<string, JsonMoments> }): BlockMoments | undefined =>
  b && { all: fromJson(b.all), blocks: b.blocks && Object.fromEntries(Object.entries(b.blocks).map(([k, v]) => [k, fromJson(v)])) };

/** Serialises a shard result to JSON text (also what distributed workers send back). */
export function shardResultToJson(shard: ShardSpec, result: ShardResult): string {
  const body =
    result.kind === 'records'
      ? result
      : {
          kind: 'stats',
          epochLength: result.epochLength,
          steps: result.steps.map(([t, s]) => [
            t,
            {
              grad: blockToJson(s.grad),
              full: blockToJson(s.full),
              difference: blockToJson(s.difference),
              scalars: Object.fromEntries(Object.entries(s.scalars).map(([k, v]) => [k, toJson(v)])),
            },
          ]),
        };
  return JSON.stringify({ format: 1, shard, result: body });
}

/** Parses what shardResultToJson wrote; throws on anything else. */
export function shardResultFromJson(text: string, expected: ShardSpec): ShardResult {
  const doc = JSON.parse(text) as { format: number; shard: ShardSpec; result: { kind: string; records?: unknown[]; steps?: [number, Record<string, unknown>][]; epochLength?: number } };
  if (doc.format !== 1) throw new Error(`unknown shard format ${doc.format}`);
  const s = doc.shard;
  if (s.batchSize !== expected.batchSize || s.initPoint !== expected.initPoint || s.runStart !== expected.runStart || s.runCount !== expected.runCount) {
    throw new Error(`holds shard ${JSON.stringify(s)}, not ${JSON.stringify(expected)}`);
  }
  if (doc.result.kind === 'records' && Array.isArray(doc.result.records)) return doc.result as ShardResult;
  if (doc.result.kind === 'stats' && Array.isArray(doc.result.steps)) {
    return {
      kind: 'stats',
      epochLength: doc.result.epochLength,
      steps: doc.result.steps.map(([t, st]) => {
        const j = st as { grad?: never; full?: never; difference?: never; scalars: Record<string, JsonMoments> };
        const stats: StepStats = {
          grad: blockFromJson(j.grad),
          full: blockFromJson(j.full),
          difference: blockFromJson(j.difference),
          scalars: Object.fromEntries(Object.entries(j.scalars).map(([k, v]) => [k, fromJson(v)])),
        };
        return [t, stats];
      }),
    };
  }
  throw new Error('neither records nor per-step moments');
}

/** The shard files of a results folder. */
export class DirectoryShardStore implements ShardStore {
  readonly dir: string;
  /** Shards found finished on disk and reused. */
  reused = 0;

  constructor(
    outDir: string,
    private readonly logger?: Logger,
  ) {
    this.dir = join(outDir, SHARD_DIR);
    mkdirSync(this.dir, { recursive: true });
  }

  load(shard: ShardSpec): ShardResult | undefined {
    const file = join(this.dir, shardFileName(shard));
    if (!existsSync(file)) return undefined;
    try {
      const result = shardResultFromJson(readFileSync(file, 'utf8'), shard);
      this.reused++;
      return result;
    } catch (e) {
      // Nothing is lost by recomputing a shard: its runs are keyed by the seed.
      this.logger?.error(`${file}: corrupt shard file (${(e as Error).message}); computing that shard again`);
      return undefined;
    }
  }

  async save(shard: ShardSpec, result: ShardResult): Promise<void> {
    await writeFileAtomic(join(this.dir, shardFileName(shard)), shardResultToJson(shard, result));
  }

  /**
   * Removes every shard file (a fresh, non-resumed run). The folder itself stays, so anything
   * watching it never sees it missing.
   */
  clear(): void {
    for (const f of readdirSync(this.dir)) rmSync(join(this.dir, f), { recursive: true, force: true });
  }
}
