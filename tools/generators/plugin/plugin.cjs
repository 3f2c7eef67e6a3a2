// @ts-check
/**
 * nx generator: `npx nx g @sgd-lab/tools:plugin <name> [--setting <dataset>-<model>]` creates
 * packages/plugin-<name> in the shape of the other plugins: the plugin entry with its typed
 * config schema and presets, a dense-replica model with a tiny synthetic default (least squares on
 * Gaussian features), a spec that runs the smoke preset, and a README stub.
 */
const { generateFiles, joinPathFragments, names, readJson } = require('@nx/devkit');
const path = require('node:path');

/**
 * @param {import('@nx/devkit').Tree} tree
 * @param {{ name: string; setting?: string; directory?: string }} options
 */
async function pluginGenerator(tree, options) {
  const name = names(options.name).fileName;
  const setting = options.setting ?? `synthetic-${name}`;
  if (!/^[a-z0-9]+(-[a-z0-9]+)+$/.test(setting)) throw new Error(`--setting "${setting}" must be <dataset>-<model> in kebab-case`);
  const root = joinPathFragments(options.directory ?? 'packages', `plugin-${name}`);
  if (tree.exists(root)) throw new Error(`${root} already exists`);
  const core = tree.exists('packages/core/package.json') ? readJson(tree, 'packages/core/package.json') : { version: '0.1.0' };
  const className = names(name).className;
  generateFiles(tree, path.join(__dirname, 'files'), root, {
    name,
    setting,
    className,
    coreVersion: core.version,
    tmpl: '',
  });
  return () => {
    process.stdout.write(`created ${root}: run \`npm install\` to link it, then \`npx nx run plugin-${name}:build\` and \`npx sgd-lab run ${setting} --preset smoke\`\n`);
  };
}

module.exports = pluginGenerator;
module.exports.default = pluginGenerator;
