#!/usr/bin/env node
// The `sgd-lab` command. Committed (not built) so npm links it at install time, before anything
// is built; it loads the built CLI, and says how to build it when it is not there yet.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(
    `sgd-lab is not built yet (${fileURLToPath(cli)} is missing): run \`npm run build\` in the repository root (npm start and npm test build it too).\n`,
  );
  process.exit(1);
}
await import(cli.href);
