/**
 * Finished shards on disk: `<out>/shards/b<b>-i<initPoint>-r<runStart>-n<runCount>.json`, each
 * written atomically when its shard ends, so a study killed at any moment resumes with only the
 * unfinished shards and ends with the same bytes as an uninterrupted run. A shard file holds the
 * run-block statistics of every recorded step (a few numbers per block), which JSON keeps exactly.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { BlockMoments, ShardSpec } from '../engine/contracts.js';
import type { ShardStore } from '../engine/run-study.js';
import type { ShardResult, StepStats } from '../engine/shard.js';
import type { RunBlockStats } from '../stats/across-runs.js';
import { sha256, writeFileAtomic } from './files.js';

export const SHARD_DIR = 'shards';
/**
 * Version of the shard file layout; files of another version are recomputed. 3: with a checksum;
 * 4: with the fingerprint of what the result depends on (study, data, code, backend).
 */
export const SHARD_FORMAT = 4;

export function shardFileName(s: ShardSpec): string {
  return `b${s.batchSize}-i${s.initPoint}-r${s.runStart}-n${s.runCount}.json`;
}

/** sha256 of the canonical JSON of a shard and its result (JSON keeps doubles exactly). */
function checksum(shard: unknown, result: unknown, fingerprint?: string): string {
  return sha256(JSON.stringify({ shard, result, fingerprint }));
}

/**
 * Serialises a shard result to JSON text (also what distributed workers send back), with the
 * sha256 of its content: a file changed after it was written (one digit, still valid JSON) is
 * found when it is read.
 */
export function shardResultToJson(shard: ShardSpec, result: ShardResult, fingerprint?: string): string {
  return JSON.stringify({ format: SHARD_FORMAT, fingerprint, shard, result, sha256: checksum(shard, result, fingerprint) });
}

function checkBlocks(where: string, v: unknown): RunBlockStats[] {
  if (!Array.isArray(v)) throw new Error(`${where}: not a list of run blocks`);
  for (const b of v as RunBlockStats[]) {
    if (typeof b !== 'object' || b === null || !Number.isInteger(b.n) || ![b.m2, b.m4, b.meanSq].every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new Error(`${where}: malformed run block ${JSON.stringify(b)}`);
    }
  }
  return v as RunBlockStats[];
}

function checkBlockMoments(where: string, v: unknown): BlockMoments | undefined {
  if (v === undefined) return undefined;
  const m = v as BlockMoments;
  checkBlocks(`${where}.all`, m.all);
  if (m.blocks) for (const [k, b] of Object.entries(m.blocks)) checkBlocks(`${where}.blocks.${k}`, b);
  return m;
}

/** Parses what shardResultToJson wrote; throws on anything else. */
export function shardResultFromJson(text: string, expected: ShardSpec, fingerprint?: string): ShardResult {
  const doc = JSON.parse(text) as { format: number; shard: ShardSpec; result: ShardResult; sha256?: string; fingerprint?: string };
  if (doc.format !== SHARD_FORMAT) throw new Error(`shard format ${doc.format}, expected ${SHARD_FORMAT}`);
  if (doc.sha256 !== checksum(doc.shard, doc.result, doc.fingerprint)) throw new Error('checksum mismatch: the content was changed after it was written');
  if (fingerprint !== undefined && doc.fingerprint !== fingerprint) {
    throw new Error(`computed for another study, data, code or backend (fingerprint ${String(doc.fingerprint).slice(0, 12)}, this run ${fingerprint.slice(0, 12)})`);
  }
  const s = doc.shard;
  if (s.batchSize !== expected.batchSize || s.initPoint !== expected.initPoint || s.runStart !== expected.runStart || s.runCount !== expected.runCount || s.runBlock !== expected.runBlock) {
    throw new Error(`holds shard ${JSON.stringify(s)}, not ${JSON.stringify(expected)}`);
  }
  if (!Array.isArray(doc.result?.steps)) throw new Error('no per-step statistics');
  for (const [t, st] of doc.result.steps as [number, StepStats][]) {
    if (!Number.isInteger(t)) throw new Error(`step ${JSON.stringify(t)} is not an integer`);
    checkBlockMoments(`step ${t} grad`, st.grad);
    checkBlockMoments(`step ${t} full`, st.full);
    checkBlockMoments(`step ${t} difference`, st.difference);
    for (const [k, b] of Object.entries(st.scalars ?? {})) checkBlocks(`step ${t} ${k}`, b);
  }
  return doc.result;
}

/** The shard files of a results folder. */
export class DirectoryShardStore implements ShardStore {
  readonly dir: string;
  /** Shards found finished on disk and reused. */
  reused = 0;

  constructor(
    outDir: string,
    private readonly logger?: Logger,
    /** The result fingerprint shards are written with and must have to be reused. */
    private readonly fingerprint?: string,
  ) {
    this.dir = join(outDir, SHARD_DIR);
    mkdirSync(this.dir, { recursive: true });
  }

  load(shard: ShardSpec): ShardResult | undefined {
    const file = join(this.dir, shardFileName(shard));
    if (!existsSync(file)) return undefined;
    try {
      const result = shardResultFromJson(readFileSync(file, 'utf8'), shard, this.fingerprint);
      this.reused++;
      return result;
    } catch (e) {
      // Nothing is lost by recomputing a shard: its runs are keyed by the seed.
      this.logger?.error(`${file}: shard file not reused (${(e as Error).message}); computing that shard again`);
      return undefined;
    }
  }

  async save(shard: ShardSpec, result: ShardResult): Promise<void> {
    await writeFileAtomic(join(this.dir, shardFileName(shard)), shardResultToJson(shard, result, this.fingerprint));
  }

  /**
   * Removes every shard file (a fresh, non-resumed run). The folder itself stays, so anything
   * watching it never sees it missing.
   */
  clear(): void {
    for (const f of readdirSync(this.dir)) rmSync(join(this.dir, f), { recursive: true, force: true });
  }
}
