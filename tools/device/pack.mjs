#!/usr/bin/env node
/**
 * Builds the device kit: everything tools/device/check.sh needs on a machine with no Node.js and
 * no registry, in one archive (tools/device/build/sgd-lab-device.tar.xz, ignored by git):
 *
 * - node/bin/node: this Node.js binary;
 * - app/: the project as built here, pruned to the files a run of the check opens (traced with
 *   strace over a --smoke run on this machine's adapter), the built dist of every @sgd-lab
 *   package, the step scripts and the PyTorch peers; node_modules links as npm made them;
 * - vulkan/lib: the Vulkan loader (Debian's libvulkan1, fetched here by apt-get download), for a
 *   machine whose driver ships the ICD but not the loader;
 * - data/mnist: the MNIST IDX files, for the planner's Fig. 5 calibration.
 *
 *   node tools/device/pack.mjs [--fast] [--data-dir DIR] [--out FILE]
 *
 * --fast: gzip -1 instead of xz (the test's kit: larger, about 66 MiB, and not size-checked).
 * Needs strace, tar, xz or gzip. Prints the archive's size per part; an xz kit above 60 MiB is an
 * error (what travels to the device is at most 64 MiB).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    fast: { type: 'boolean', default: false },
    'data-dir': { type: 'string', default: [process.env.SGD_LAB_DATA_DIR, join(root, 'data'), join(root, '..', 'shared', 'data')].find((d) => d && existsSync(join(d, 'mnist'))) },
    out: { type: 'string' },
  },
});
const LIMIT = 60 * 2 ** 20;
const archive = resolve(values.out ?? join(root, 'tools', 'device', 'build', `sgd-lab-device.tar.${values.fast ? 'gz' : 'xz'}`));
const say = (s) => process.stdout.write(`${s}\n`);
const fail = (s) => {
  process.stderr.write(`pack: ${s}\n`);
  process.exit(1);
};
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  return r;
}

const packages = readdirSync(join(root, 'packages')).filter((p) => existsSync(join(root, 'packages', p, 'package.json')));
for (const p of packages) if (!existsSync(join(root, 'packages', p, 'dist'))) fail(`packages/${p} is not built: run npm run build first`);
if (run('strace', ['-V']).status !== 0) fail('strace is needed to trace what the check opens (apt-get install strace)');

// 1. What a run of the check opens: a --smoke run under strace (the peers are Python, added below).
const stage = mkdtempSync(join(tmpdir(), 'sgd-lab-kit-'));
const traceFile = join(stage, 'trace.txt');
say('tracing a --smoke run of the check ...');
const traced = run('strace', ['-f', '-qq', '-e', 'trace=open,openat', '-e', 'signal=none', '-o', traceFile, process.execPath, join(root, 'tools', 'device', 'gpu-check.mjs'), '--smoke', '--out', join(stage, 'trace-out'), '--python', 'false'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
if (!existsSync(join(stage, 'trace-out', 'gpu.json'))) fail(`the traced run wrote no report (exit ${traced.status}): ${traced.stderr.trim().split('\n').at(-1)}`);
const opened = new Set();
for (const line of readFileSync(traceFile, 'utf8').split('\n')) {
  const m = /open(?:at)?\((?:AT_FDCWD|\d+), "([^"]+)"[^)]*\)\s*=\s*\d+/.exec(line) ?? /open\("([^"]+)"[^)]*\)\s*=\s*\d+/.exec(line);
  if (!m) continue;
  const p = resolve(root, m[1]);
  if (!p.startsWith(root + sep)) continue;
  try {
    if (statSync(p).isFile()) opened.add(realpathSync(p));
  } catch {
    /* gone since */
  }
}

// 2. The app: traced files, every package's dist and package.json, the check and the steps.
const app = join(stage, 'kit', 'app');
const files = new Set(opened);
const addTree = (dir, keep = () => true) => {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath ?? e.path, e.name);
    if (e.isFile() && keep(p)) files.add(p);
  }
};
for (const p of packages) {
  files.add(join(root, 'packages', p, 'package.json'));
  addTree(join(root, 'packages', p, 'dist'), (f) => f.endsWith('.js') || f.endsWith('.json'));
  addTree(join(root, 'packages', p, 'schema'));
  addTree(join(root, 'packages', p, 'bin'));
}
addTree(join(root, 'tools', 'device'), (f) => !f.includes(`${sep}build${sep}`));
addTree(join(root, 'tools', 'bench'), (f) => /\.(py|mjs)$/.test(f));
for (const f of ['package.json', 'tools/package.json']) files.add(join(root, f));
// The native addon needs OpenBLAS, which the device may lack; the check runs on webgpu and cpu.
for (const f of [...files]) if (f.endsWith('.node') && f.startsWith(join(root, 'packages', 'native') + sep)) files.delete(f);
for (const f of files) {
  const to = join(app, relative(root, f));
  mkdirSync(dirname(to), { recursive: true });
  cpSync(f, to);
}
// npm's links of the workspace packages (node_modules/@sgd-lab/x -> ../../packages/x).
const scope = join(root, 'node_modules', '@sgd-lab');
for (const name of readdirSync(scope)) {
  const link = join(scope, name);
  if (!lstatSync(link).isSymbolicLink()) continue;
  mkdirSync(join(app, 'node_modules', '@sgd-lab'), { recursive: true });
  symlinkSync(readlinkSync(link), join(app, 'node_modules', '@sgd-lab', name));
}

// 3. Node.js itself.
mkdirSync(join(stage, 'kit', 'node', 'bin'), { recursive: true });
cpSync(process.execPath, join(stage, 'kit', 'node', 'bin', 'node'));

// 4. The Vulkan loader: Debian's package, unpacked; else this machine's library.
const vk = join(stage, 'kit', 'vulkan', 'lib');
mkdirSync(vk, { recursive: true });
const debDir = join(stage, 'deb');
mkdirSync(debDir);
const dl = run('apt-get', ['download', 'libvulkan1'], { cwd: debDir });
const deb = readdirSync(debDir).find((f) => f.endsWith('.deb'));
if (dl.status === 0 && deb) {
  run('dpkg-deb', ['-x', join(debDir, deb), join(debDir, 'x')]);
  const lib = readdirSync(join(debDir, 'x'), { recursive: true }).filter((f) => /libvulkan\.so\.1/.test(f));
  for (const f of lib) cpSync(join(debDir, 'x', f), join(vk, f.split(sep).at(-1)), { dereference: false, verbatimSymlinks: true });
  say(`Vulkan loader: ${deb}`);
} else if (existsSync('/usr/lib/x86_64-linux-gnu/libvulkan.so.1')) {
  cpSync(realpathSync('/usr/lib/x86_64-linux-gnu/libvulkan.so.1'), join(vk, 'libvulkan.so.1'));
  say('Vulkan loader: this machine\'s libvulkan.so.1');
} else say(`Vulkan loader: not packed (apt-get download libvulkan1 failed: ${dl.stderr.trim().split('\n').at(-1)}); check.sh then needs the device's own`);

// 5. MNIST for the planner's calibration of Fig. 5.
const mnist = values['data-dir'] && join(values['data-dir'], 'mnist');
if (mnist && existsSync(mnist)) {
  mkdirSync(join(stage, 'kit', 'data', 'mnist'), { recursive: true });
  for (const f of readdirSync(mnist).filter((f) => f.endsWith('.gz'))) cpSync(join(mnist, f), join(stage, 'kit', 'data', 'mnist', f));
} else say('MNIST IDX files: not found (--data-dir): the device check\'s Fig. 5 plan will say so');
writeFileSync(join(stage, 'kit', 'KIT.json'), JSON.stringify({ built: new Date().toISOString(), node: process.version, files: files.size, traced: opened.size }, null, 2) + '\n');

// 6. The archive, and what is in it.
mkdirSync(dirname(archive), { recursive: true });
rmSync(archive, { force: true });
const tar = run('tar', ['-C', join(stage, 'kit'), values.fast ? '-czf' : '-cJf', archive, '.'], { env: { ...process.env, XZ_OPT: '-6 -T0', GZIP: '-1' } });
if (tar.status !== 0) fail(`tar: ${tar.stderr.trim()}`);
const du = (d) => Number(run('du', ['-sb', d]).stdout.split('\t')[0]);
const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
for (const part of ['node', 'app', 'vulkan', 'data']) if (existsSync(join(stage, 'kit', part))) say(`  ${part}: ${mib(du(join(stage, 'kit', part)))} unpacked`);
const size = statSync(archive).size;
say(`${relative(root, archive)}: ${mib(size)} (${files.size} files of the app, ${opened.size} of them traced)`);
rmSync(stage, { recursive: true, force: true });
if (size > LIMIT && !values.fast) fail(`the kit is ${mib(size)}, over ${mib(LIMIT)}`);
if (size > LIMIT) say(`(over ${mib(LIMIT)}: fine for a --fast kit used here; the xz kit is what travels)`);
