// Builds the native addon with node-gyp against the system's OpenBLAS, as part of `npm run build`
// (never at install time: binding.gyp lives in addon/, not at the package root, so npm's implicit
// `node-gyp rebuild` install step never applies). When it cannot be built (no compiler, no OpenBLAS headers, no Node
// headers) it records why in build/status.json and exits 0: the `native` backend then says so
// once and the engine uses wasm. SGD_LAB_NATIVE=0 skips the build.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const out = join(root, 'build', 'Release', 'sgd_native.node');
const statusFile = join(root, 'build', 'status.json');
const addonDir = join(root, 'addon');
const built = join(addonDir, 'build', 'Release', 'sgd_native.node');
const sources = [join(addonDir, 'sgd_native.cc'), join(addonDir, 'lanes.h'), join(addonDir, 'normals.h'), join(addonDir, 'transformer.h'), join(addonDir, 'mlp.h'), join(addonDir, 'binding.gyp')];

function status(ok, reason) {
  mkdirSync(dirname(statusFile), { recursive: true });
  writeFileSync(statusFile, JSON.stringify({ ok, reason, at: new Date().toISOString() }, null, 2) + '\n');
  if (!ok) console.warn(`@sgd-lab/native: addon not built: ${reason}\n@sgd-lab/native: the "native" backend will fall back to wasm.`);
  process.exit(0);
}

if (process.env.SGD_LAB_NATIVE === '0') status(false, 'SGD_LAB_NATIVE=0 skipped the build');

const upToDate = existsSync(out) && sources.every((s) => statSync(s).mtimeMs <= statSync(out).mtimeMs);
if (upToDate) {
  const previous = existsSync(statusFile) ? JSON.parse(readFileSync(statusFile, 'utf8')) : undefined;
  if (previous?.ok) process.exit(0);
}

const blas = require('./blas.cjs').find();
if (!blas.include) status(false, 'OpenBLAS headers (cblas.h) not found; on Debian/Ubuntu: sudo apt-get install libopenblas-dev (or set OPENBLAS_HOME)');
if (!blas.lib) status(false, 'libopenblas.so not found; on Debian/Ubuntu: sudo apt-get install libopenblas-dev (or set OPENBLAS_HOME)');

// node-gyp ships inside npm; npm tells scripts where (npm_config_node_gyp).
const candidates = [
  process.env.npm_config_node_gyp,
  process.env.npm_execpath && join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((c) => existsSync(c));
if (!gyp) status(false, `node-gyp not found (looked in ${candidates.join(', ')})`);

// Node's own headers: npm's nodedir setting, else next to this node binary; never a download.
const prefix = join(dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
if (!nodedir) status(false, `Node.js headers not found (no npm nodedir setting, no ${join(prefix, 'include', 'node')}); set npm's nodedir to a Node.js source or headers folder`);

const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs=2'], { cwd: addonDir, encoding: 'utf8' });
if (r.status !== 0 || !existsSync(built)) {
  const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
  status(false, `node-gyp rebuild failed (exit ${r.status}):\n${tail}`);
}
mkdirSync(dirname(out), { recursive: true });
copyFileSync(built, out);
status(true, `built against ${blas.lib} with headers from ${nodedir}`);
