/**
 * Results do not depend on the layout of the work (docs/statistics.md): for every setting's smoke
 * preset, several shard sizes, a resume from a partly finished folder, and shards computed by the
 * distributed worker's code path give byte-identical metrics.jsonl and claims.json.
 */
import 'reflect-metadata';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLogger, discoverExtensions, resolveStudy, runSession, shardResultFromJson, type RemoteShards, type StudyConfig } from '@sgd-lab/core';
import { computeShard } from '@sgd-lab/distributed';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const dataDir = [process.env.SGD_LAB_DATA_DIR, join(repo, '..', 'shared', 'data')].find((d) => d && existsSync(d)) ?? join(repo, 'data');
const logger = createLogger({ quiet: true, level: 'error' });

/** Per setting: extra fields and the shard sizes tried (multiples of its run block). */
const cases: { setting: string; needs?: string; extra: Record<string, unknown>; shardSizes: number[] }[] = [
  { setting: 'admission-linreg', extra: { options: { source: 'synthetic' } }, shardSizes: [16, 48, 112] },
  { setting: 'admission-linreg', needs: 'graduate_admission', extra: {}, shardSizes: [32, 160] },
  { setting: 'admission-logreg', needs: 'graduate_admission', extra: {}, shardSizes: [16, 96] },
  { setting: 'gaussian-deeplinear', extra: {}, shardSizes: [16, 64, 128] },
  // Few runs: run blocks of 2 so that they can be split at all.
  { setting: 'mnist-mlp', extra: { runBlock: 2 }, shardSizes: [2, 4] },
  { setting: 'yelp-xlnet', needs: 'yelp_labelled_uci', extra: { runBlock: 2, runs: 6 }, shardSizes: [2, 4] },
];

async function run(study: StudyConfig, outDir: string, o: { resume?: boolean; remote?: RemoteShards } = {}): Promise<{ metrics: string; claims: string }> {
  const { plugins, components } = await discoverExtensions();
  const plugin = plugins.find((p) => p.value.name === study.setting)!.value;
  const r = await runSession({ study, plugin, packages: {}, outDir, dataDir, logger, components, resume: o.resume, remote: o.remote });
  if (r.status !== 'completed') throw r.error;
  return { metrics: readFileSync(join(outDir, 'metrics.jsonl'), 'utf8'), claims: readFileSync(join(outDir, 'claims.json'), 'utf8') };
}

describe.each(cases)('results of $setting $extra do not depend on the layout', ({ setting, needs, extra, shardSizes }) => {
  const available = !needs || existsSync(join(dataDir, needs));
  it.runIf(available)(`whole, runsPerShard in {${shardSizes.join(', ')}}, resumed, and through the worker: byte-identical`, async () => {
    const { plugins } = await discoverExtensions();
    const plugin = plugins.find((p) => p.value.name === setting)!.value;
    const resolveWith = (more: Record<string, unknown>) => resolveStudy({ setting, preset: 'smoke', reporters: ['jsonl', 'claims'], ...extra, ...more }, plugin, 'layout test');
    const root = mkdtempSync(join(tmpdir(), 'sgd-lab-layout-'));
    try {
      const reference = await run(resolveWith({}), join(root, 'whole'));
      expect(reference.metrics.length).toBeGreaterThan(0);
      expect(JSON.parse(reference.claims).claims.length).toBeGreaterThan(0);
      const layouts: string[] = ['whole'];
      for (const runsPerShard of shardSizes) {
        const got = await run(resolveWith({ runsPerShard }), join(root, `s${runsPerShard}`));
        expect({ runsPerShard, ...got }).toEqual({ runsPerShard, ...reference });
        layouts.push(`runsPerShard=${runsPerShard}`);
      }
      // Resume: the finest split, with every other shard file removed as if killed midway.
      const fine = resolveWith({ runsPerShard: shardSizes[0] });
      const dir = join(root, `s${shardSizes[0]}`);
      const files = readdirSync(join(dir, 'shards')).sort();
      expect(files.length).toBeGreaterThan(1);
      files.forEach((f, i) => i % 2 === 0 && rmSync(join(dir, 'shards', f)));
      expect(await run(fine, dir, { resume: true })).toEqual(reference);
      // Half the shards came from disk, half were computed again.
      expect(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).resumedShards).toBe(Math.floor(files.length / 2));
      layouts.push('resumed');
      // Shards computed by the distributed worker's code and sent back as JSON.
      const remote: RemoteShards = { submit: async (shard, data) => shardResultFromJson(await computeShard({ study: fine, shard, data }, dataDir, logger), shard) };
      expect(await run(fine, join(root, 'worker'), { remote })).toEqual(reference);
      layouts.push('worker');
      expect(layouts.length).toBeGreaterThanOrEqual(5);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
