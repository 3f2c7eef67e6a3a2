#!/usr/bin/env node
import { main } from './cli.js';

// Exit explicitly once the command is done: results are flushed by then, and a library's idle
// handle (a Redis client's reconnect timer, say) must not keep a finished command alive.
main(process.argv.slice(2)).then((code) => process.exit(code));
