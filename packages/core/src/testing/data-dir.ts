/**
 * Where tests find real data: $SGD_LAB_DATA_DIR, else `shared/data` beside the repository (the
 * layout of this workplace). A user's fresh clone has neither: tests that need real data are then
 * skipped, and say so.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the folder with nx.json), found from this file. */
export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'nx.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('repository root (nx.json) not found');
    d = up;
  }
  return d;
}

/** The data directory for tests, or undefined when there is none. */
export function testDataDir(): string | undefined {
  const candidates = [process.env.SGD_LAB_DATA_DIR, join(repoRoot(), '..', 'shared', 'data')].filter((x): x is string => !!x);
  return candidates.map((c) => resolve(c)).find((c) => existsSync(c));
}

/** The path of a real data file for a test, or undefined with the reason printed once. */
export function testDataFile(...parts: string[]): string | undefined {
  const dir = testDataDir();
  const file = dir ? join(dir, ...parts) : undefined;
  if (!file || !existsSync(file)) {
    process.stderr.write(
      `SKIPPED (no real data): ${parts.join('/')} not found under ${dir ?? '$SGD_LAB_DATA_DIR or ../shared/data'}; ` +
        `set SGD_LAB_DATA_DIR to a folder laid out like shared/data to run these tests\n`,
    );
    return undefined;
  }
  return file;
}
