/**
 * The device kit end to end, on this machine's adapter (llvmpipe in CI): pack.mjs builds the kit
 * (gzip for speed; the real kit is xz), check.sh unpacks it outside the repository and runs the
 * whole check at smoke sizes with the kit's own Node.js, and merge.mjs puts its section into a
 * copy of BENCHMARKS.md. What runs on the GPU machine is this same sequence at paper sizes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'sgd-lab-device-spec-'));
const kit = join(scratch, 'kit.tar.gz');
const out = join(scratch, 'out');
interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}
let pack: Ran;
let check: Ran;

/**
 * A child process awaited by its exit event: packing and the check take minutes on a busy
 * machine, and a synchronous spawn would block the test worker past vitest's RPC timeout.
 */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Ran> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

beforeAll(async () => {
  pack = await run(process.execPath, [join(root, 'tools', 'device', 'pack.mjs'), '--fast', '--out', kit], { cwd: root });
  // check.sh from a folder of its own, as on the device (the repository is not where the kit runs).
  cpSync(join(root, 'tools', 'device'), join(scratch, 'device'), { recursive: true, filter: (f) => !f.includes('/build') });
  check = await run('bash', [join(scratch, 'device', 'check.sh'), '--smoke'], {
    cwd: scratch,
    env: { ...process.env, OUT: out, SGD_LAB_KIT: kit, SGD_LAB_PYTHON: existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3' },
  });
}, 900_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the device kit (tools/device)', () => {
  it('packs the built project, Node.js and the Vulkan loader into one archive', () => {
    expect(pack.status, String(pack.stderr)).toBe(0);
    expect(String(pack.stdout)).toMatch(/node: \d+\.\d MiB unpacked/);
    expect(String(pack.stdout)).toMatch(/app: .*files of the app, \d+ of them traced/s);
    expect(existsSync(kit)).toBe(true);
  });

  it('runs the whole check from the unpacked kit, with its own Node.js, outside the repository', () => {
    expect(check.status, `${check.stdout}\n${check.stderr}`).toBe(0);
    const env = readFileSync(join(out, 'environment.txt'), 'utf8');
    // The kit's node, not this machine's.
    const node = /^node: (\S+)/m.exec(env)![1];
    expect(node.startsWith(tmpdir())).toBe(true);
    expect(node).not.toBe(process.execPath);
    expect(env).toMatch(/gpu-check exit 0/);
  });

  it('reports the adapter, every agreement check passing, the three steps, the kernels off and the plan', () => {
    const report = JSON.parse(readFileSync(join(out, 'gpu.json'), 'utf8'));
    expect(report.parts.adapter).toMatchObject({ ok: true });
    expect(report.parts.agreement.length).toBeGreaterThanOrEqual(12);
    for (const c of report.parts.agreement) expect(c, c.name).toMatchObject({ ok: true });
    expect(report.parts.steps.map((s: { id: string }) => s.id)).toEqual(['deeplinear', 'mnist', 'xlnet']);
    for (const s of report.parts.steps) expect(s.rounds[0].webgpu, s.id).toBeGreaterThan(0);
    for (const s of report.parts.steps.slice(0, 2)) expect(s.withoutKernels, s.id).toBeGreaterThan(0);
    expect(report.parts.plan.replicaSteps).toBeGreaterThan(0);
    expect(report.parts.plan.seconds).toBeGreaterThan(0);
    // The only problem a smoke run may have here: no PyTorch on this machine.
    for (const p of report.problems) expect(p).toMatch(/PyTorch peer unavailable/);
    if (report.parts.torch.torch) for (const s of report.parts.steps) expect(s.rounds[0].torch, s.id).toBeGreaterThan(0);
  });

  it('writes a gpu section that merge.mjs puts into BENCHMARKS.md, replacing an older one', () => {
    const section = readFileSync(join(out, 'gpu-section.md'), 'utf8');
    expect(section).toMatch(/^## gpu /);
    expect(section).toMatch(/_Measured on \d{4}-\d\d-\d\d; machine: /);
    expect(section).toMatch(/\| MNIST step .*\| \d+(\.\d+)? ms \|/);
    const bench = join(scratch, 'BENCHMARKS.md');
    writeFileSync(bench, '# Benchmarks\n\n## mnist-mlp (x)\n\nrow\n\n## gpu (old)\n\nold numbers\n\n## npm-start (y)\n\nend\n');
    const merge = () => spawnSync(process.execPath, [join(root, 'tools', 'device', 'merge.mjs'), join(out, 'gpu-section.md'), bench], { encoding: 'utf8' });
    expect(merge().status).toBe(0);
    const merged = readFileSync(bench, 'utf8');
    expect(merged).not.toMatch(/old numbers/);
    expect(merged).toContain(section.trimEnd());
    expect(merged.indexOf('## mnist-mlp')).toBeLessThan(merged.indexOf('## gpu'));
    expect(merged.indexOf('## gpu')).toBeLessThan(merged.indexOf('## npm-start'));
    // Merging twice changes nothing; a file that is not a gpu section is refused.
    expect(merge().status).toBe(0);
    expect(readFileSync(bench, 'utf8')).toBe(merged);
    const wrong = join(scratch, 'wrong.md');
    writeFileSync(wrong, '## mnist-mlp\n');
    const refused = spawnSync(process.execPath, [join(root, 'tools', 'device', 'merge.mjs'), wrong, bench], { encoding: 'utf8' });
    expect(refused.status).toBe(65);
    expect(refused.stderr).toMatch(/not a gpu section/);
  });
});
