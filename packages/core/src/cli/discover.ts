/**
 * Finds plugins and reporters without core importing any of them: every package reachable from a
 * node_modules folder (above the working directory or above core itself) whose package.json has
 * an `"sgd-lab": { "plugin": "<module>" }` or `{ "reporter": "<module>" }` field is loaded, and its
 * default export used. `SGD_LAB_PLUGINS` adds module paths (comma-separated) for plugins kept
 * outside any node_modules.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AnyPlugin, CliCommand, Reporter } from '../plugin.js';

export interface Found<T> {
  value: T;
  packageName: string;
  version: string;
  dir: string;
}

export interface Extensions {
  plugins: Found<AnyPlugin>[];
  reporters: Found<Reporter>[];
  commands: Found<Record<string, CliCommand>>[];
}

interface SgdLabField {
  plugin?: string;
  reporter?: string | string[];
  commands?: string;
}

function nodeModulesAbove(start: string): string[] {
  const dirs: string[] = [];
  let d = resolve(start);
  for (;;) {
    const nm = join(d, 'node_modules');
    if (existsSync(nm)) dirs.push(nm);
    const up = dirname(d);
    if (up === d) return dirs;
    d = up;
  }
}

function packageDirs(nodeModules: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(nodeModules)) {
    if (name.startsWith('.')) continue;
    const p = join(nodeModules, name);
    if (name.startsWith('@')) {
      try {
        for (const sub of readdirSync(p)) out.push(join(p, sub));
      } catch {
        /* not a folder */
      }
    } else out.push(p);
  }
  return out;
}

async function importDefault(file: string): Promise<unknown> {
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  return mod.default ?? mod;
}

let cached: Promise<Extensions> | undefined;

/** Every plugin and reporter that can be found (memoised per process). */
export function discoverExtensions(cwd = process.cwd()): Promise<Extensions> {
  cached ??= discover(cwd);
  return cached;
}

async function discover(cwd: string): Promise<Extensions> {
  const here = dirname(fileURLToPath(import.meta.url));
  const seen = new Set<string>();
  const plugins: Found<AnyPlugin>[] = [];
  const reporters: Found<Reporter>[] = [];
  const commands: Found<Record<string, CliCommand>>[] = [];
  const roots = [...nodeModulesAbove(cwd), ...nodeModulesAbove(here)];
  for (const nm of roots) {
    for (const dir of packageDirs(nm)) {
      let real: string;
      try {
        real = realpathSync(dir);
      } catch {
        continue;
      }
      if (seen.has(real)) continue;
      seen.add(real);
      const pj = join(real, 'package.json');
      if (!existsSync(pj)) continue;
      let meta: { name: string; version: string; 'sgd-lab'?: SgdLabField };
      try {
        meta = JSON.parse(readFileSync(pj, 'utf8'));
      } catch {
        continue;
      }
      const field = meta['sgd-lab'];
      if (!field) continue;
      const info = { packageName: meta.name, version: meta.version, dir: real };
      if (field.plugin) {
        const file = join(real, field.plugin);
        if (!existsSync(file)) throw new Error(`plugin package ${meta.name} is not built: ${file} is missing (run npm run build)`);
        plugins.push({ ...info, value: (await importDefault(file)) as AnyPlugin });
      }
      for (const rel of [field.reporter ?? []].flat()) {
        const file = join(real, rel);
        if (!existsSync(file)) throw new Error(`reporter package ${meta.name} is not built: ${file} is missing (run npm run build)`);
        const mod = await importDefault(file);
        for (const r of Array.isArray(mod) ? mod : [mod]) reporters.push({ ...info, value: r as Reporter });
      }
      if (field.commands) {
        const file = join(real, field.commands);
        if (!existsSync(file)) throw new Error(`package ${meta.name} is not built: ${file} is missing (run npm run build)`);
        commands.push({ ...info, value: (await importDefault(file)) as Record<string, CliCommand> });
      }
    }
  }
  for (const file of (process.env.SGD_LAB_PLUGINS ?? '').split(',').filter(Boolean)) {
    const abs = resolve(cwd, file);
    plugins.push({ packageName: abs, version: 'local', dir: dirname(abs), value: (await importDefault(abs)) as AnyPlugin });
  }
  plugins.sort((a, b) => a.value.name.localeCompare(b.value.name));
  return { plugins, reporters, commands };
}
