// Where the system's OpenBLAS is: prints gyp include dirs (`include`) or linker flags (`libs`).
// Looks in OPENBLAS_HOME first, then Debian's multiarch and the usual prefixes.
const { existsSync } = require('node:fs');
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');

function multiarch() {
  try {
    return execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function find() {
  const arch = multiarch();
  const home = process.env.OPENBLAS_HOME;
  const includes = [home && join(home, 'include'), arch && `/usr/include/${arch}`, '/usr/include/openblas', '/usr/include', '/opt/OpenBLAS/include', '/usr/local/include'].filter(Boolean);
  const libs = [home && join(home, 'lib'), arch && `/usr/lib/${arch}`, '/usr/lib64', '/usr/lib', '/opt/OpenBLAS/lib', '/usr/local/lib'].filter(Boolean);
  const include = includes.find((d) => existsSync(join(d, 'cblas.h')) && (existsSync(join(d, 'openblas_config.h')) || existsSync(join(d, 'cblas-openblas.h'))));
  // Debian ships OpenBLAS built with pthreads, with OpenMP and serial; libopenblas.so points to
  // whichever the alternatives system picked. The pthread build is the fastest for this addon
  // (its own threads call single-threaded OpenBLAS for batches of small products), so it is
  // linked by path (with an rpath) when present.
  const pthread = libs.map((d) => join(d, 'openblas-pthread')).find((d) => existsSync(join(d, 'libopenblas.so')));
  const lib = pthread ?? libs.find((d) => existsSync(join(d, 'libopenblas.so')) || existsSync(join(d, 'libopenblas.dylib')));
  return { include, lib, pinned: pthread !== undefined };
}

module.exports = { find };

if (require.main === module) {
  const { include, lib, pinned } = find();
  if (process.argv[2] === 'include') console.log(include ?? '');
  // A library outside the loader's default path (OPENBLAS_HOME, the pinned pthread build) is
  // found again at run time by rpath.
  else if (process.argv[2] === 'libs') console.log(lib && (pinned || process.env.OPENBLAS_HOME) ? `-L${lib} -Wl,-rpath,${lib} -lopenblas` : lib ? `-L${lib} -lopenblas` : '-lopenblas');
  else console.log(JSON.stringify({ include, lib, pinned }));
}
