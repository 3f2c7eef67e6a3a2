#!/usr/bin/env node
/** Runs `sgd-lab <args>` in this process and prints its exit code, seconds and peak RSS as JSON on stderr's last line. */
import { cliMain } from '@sgd-lab/core';

const t0 = performance.now();
const code = await cliMain(process.argv.slice(2));
process.stderr.write('\n' + JSON.stringify({ code, seconds: (performance.now() - t0) / 1000, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
process.exit(code);
