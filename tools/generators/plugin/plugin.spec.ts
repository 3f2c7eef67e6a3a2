/**
 * The generator end to end: a plugin generated into a temporary workspace builds, is listed by
 * sgd-lab, runs its smoke study with its claims holding, and passes its own tests.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const nx = join(repo, 'node_modules', 'nx', 'dist', 'bin', 'nx.js');
const cli = join(repo, 'packages', 'core', 'dist', 'cli', 'main.js');

/** Runs a command without blocking this test worker's event loop (vitest reports over it). */
function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { cwd, maxBuffer: 1 << 26, env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false', ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}\n${stderr}` }),
    ),
  );
}

describe('nx g @sgd-lab/tools:plugin', () => {
  it('creates a plugin that builds, is listed, runs its smoke study and passes its tests', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'sgd-lab-gen-'));
    writeFileSync(join(ws, 'package.json'), JSON.stringify({ name: 'gen-test', private: true, type: 'module', workspaces: ['packages/*'] }));
    writeFileSync(join(ws, 'nx.json'), JSON.stringify({}));
    cpSync(join(repo, 'tsconfig.base.json'), join(ws, 'tsconfig.base.json'));
    for (const f of ['vitest.shared.ts', 'vitest.setup.ts']) cpSync(join(repo, f), join(ws, f));
    mkdirSync(join(ws, 'packages'));
    symlinkSync(join(repo, 'packages', 'core'), join(ws, 'packages', 'core'));
    symlinkSync(join(repo, 'node_modules'), join(ws, 'node_modules'));

    const gen = await sh(process.execPath, [nx, 'g', '@sgd-lab/tools:plugin', 'demo', '--setting', 'synthetic-demo'], ws);
    expect(gen.code, gen.out).toBe(0);
    const pkg = join(ws, 'packages', 'plugin-demo');
    for (const f of ['package.json', 'README.md', 'src/index.ts', 'src/model.ts', 'src/index.spec.ts', 'tsconfig.json', 'vitest.config.ts']) expect(existsSync(join(pkg, f))).toBe(true);
    expect(JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'))['sgd-lab']).toEqual({ plugin: './dist/index.js' });

    const build = await sh('npm', ['run', 'build'], pkg);
    expect(build.code, build.out).toBe(0);
    expect(JSON.parse(readFileSync(join(pkg, 'schema', 'synthetic-demo.schema.json'), 'utf8')).properties.setting.const).toBe('synthetic-demo');

    const env = { SGD_LAB_PLUGINS: join(pkg, 'dist', 'index.js') };
    const list = await sh(process.execPath, [cli, 'list'], ws, env);
    expect(list.code, list.out).toBe(0);
    expect(list.out).toMatch(/synthetic-demo/);

    const out = join(ws, 'results', 'smoke');
    const run = await sh(process.execPath, [cli, 'run', 'synthetic-demo', '--preset', 'smoke', '--out', out, '--quiet'], ws, env);
    expect(run.code, run.out).toBe(0);
    const claims = JSON.parse(readFileSync(join(out, 'claims.json'), 'utf8')).claims as { verdict: string }[];
    expect(claims.length).toBeGreaterThan(0);
    for (const c of claims) expect(c.verdict).toBe('holds');

    const test = await sh(process.execPath, [join(repo, 'node_modules', 'vitest', 'vitest.mjs'), 'run'], pkg);
    expect(test.code, test.out).toBe(0);
    expect(test.out).toMatch(/1 passed/);

    const again = await sh(process.execPath, [nx, 'g', '@sgd-lab/tools:plugin', 'demo'], ws);
    expect(again.code).not.toBe(0);
    expect(again.out).toMatch(/already exists/);
  });
});
