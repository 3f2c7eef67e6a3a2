/** @sgd-lab/core: contracts, config, randomness, statistics, the run engine. */
import 'reflect-metadata';

export * from './errors.js';
export * from './tokens.js';
export * from './plugin.js';
export * from './config/study-config.js';
export * from './config/validate.js';
export * from './random/stream.js';
export * from './stats/normal.js';
export * from './stats/across-runs.js';
export * from './stats/polyfit.js';
export * from './engine/records.js';
export * from './engine/contracts.js';
export * from './engine/record-index.js';
export * from './engine/dense.js';
export * from './engine/run-study.js';
export * from './engine/session.js';
export * from './engine/components.js';
export * from './engine/epoch-rows.js';
export * from './claims/monotone.js';
export * from './claims/epoch-mean.js';
export * from './io/files.js';
export * from './io/shard-store.js';
export * from './io/builtin-reporters.js';
export * from './log/logger.js';
export { main as cliMain } from './cli/cli.js';
export { discoverExtensions } from './cli/discover.js';
export type { JSONSchemaType } from 'ajv';
