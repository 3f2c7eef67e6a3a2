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
import type { AnyPlugin, CliCommand, RemoteExecutor, Reporter } from '../plugin.js';
import { ComponentRegistry, type ComponentFactories } from '../engine/components.js';

export interface Found<T> {
  value: T;
  packageName: string;
  version: string;
  dir: string;
}

export interface Extensions {
  plugins: Found<AnyPlugin>[];
  /** Packages that declare an extension whose module is not built: name -> the missing file. */
  unbuilt: Map<string, string>;
  reporters: Found<Reporter>[];
  commands: Found<Record<string, CliCommand>>[];
  /** Remote shard executors (distributed workers). */
  remotes: Found<RemoteExecutor>[];
  /** Samplers and optimizers of every package (plugins' own and `components` modules). */
  components: ComponentRegistry;
}

interface SgdLabField {
  plugin?: string;
  components?: string;
  reporter?: string | string[];
  commands?: string;
  remote?: string;
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
  const remotes: Found<RemoteExecutor>[] = [];
  const unbuilt = new Map<string, string>();
  const components = new ComponentRegistry();
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
      // A package that is not built yet (a workspace mid-build) is skipped, not fatal: asking for
      // its setting by name then says what is missing.
      const load = async (rel: string) => {
        const file = join(real, rel);
        if (existsSync(file)) {
          try {
            return await importDefault(file);
          } catch (e) {
            unbuilt.set(meta.name, `${file} failed to load: ${(e as Error).message}`);
            return undefined;
          }
        }
        unbuilt.set(meta.name, file);
        return undefined;
      };
      if (field.plugin) {
        const mod = await load(field.plugin);
        if (mod) {
          plugins.push({ ...info, value: mod as AnyPlugin });
          if ((mod as AnyPlugin).components) components.add(meta.name, (mod as AnyPlugin).components!);
        }
      }
      if (field.components) {
        const mod = await load(field.components);
        if (mod) components.add(meta.name, mod as ComponentFactories);
      }
      for (const rel of [field.reporter ?? []].flat()) {
        const mod = await load(rel);
        if (mod) for (const r of Array.isArray(mod) ? mod : [mod]) reporters.push({ ...info, value: r as Reporter });
      }
      if (field.commands) {
        const mod = await load(field.commands);
        if (mod) commands.push({ ...info, value: mod as Record<string, CliCommand> });
      }
      if (field.remote) {
        const mod = await load(field.remote);
        if (mod) remotes.push({ ...info, value: mod as RemoteExecutor });
      }
    }
  }
  for (const file of (process.env.SGD_LAB_PLUGINS ?? '').split(',').filter(Boolean)) {
    const abs = resolve(cwd, file);
    plugins.push({ packageName: abs, version: 'local', dir: dirname(abs), value: (await importDefault(abs)) as AnyPlugin });
  }
  plugins.sort((a, b) => a.value.name.localeCompare(b.value.name));
  return { plugins, unbuilt, reporters, commands, remotes, components };
}
