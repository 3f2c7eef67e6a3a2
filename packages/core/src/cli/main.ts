#!/usr/bin/env node
// A signal that arrives while the CLI's modules load is kept, not fatal: the command then stops
// before it starts anything, and a study that has a results folder ends with its manifest
// `cancelled`. Modules load after the handlers are in place.
const early: NodeJS.Signals[] = [];
const keep = (signal: NodeJS.Signals) => early.push(signal);
process.on('SIGINT', keep);
process.on('SIGTERM', keep);
const { main } = await import('./cli.js');
process.off('SIGINT', keep);
process.off('SIGTERM', keep);

// Exit explicitly once the command is done: results are flushed by then, and a library's idle
// handle (a Redis client's reconnect timer, say) must not keep a finished command alive.
main(process.argv.slice(2), undefined, early).then((code) => process.exit(code));
