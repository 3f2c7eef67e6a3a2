/** Helpers for the tests of core and of plugins: `@sgd-lab/core/testing`. */
export * from './data-dir.js';
export { default as toyPlugin, toyModel, toyPoints, toySampler } from './toy-plugin.js';
export * from './collect.js';
export * from './cli-process.js';
