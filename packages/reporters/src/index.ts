/** @sgd-lab/reporters: figures and reports from metric records. */
export * from './figures.js';
export * from './render.js';
export * from './html.js';
export * from './markup.js';
export * from './report.js';
export * from './results.js';
export { htmlReporter } from './reporters.js';
export { commands } from './commands.js';
