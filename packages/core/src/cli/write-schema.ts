/**
 * Build step: writes a study JSON Schema for editors. Without arguments besides the output file,
 * the generic schema (options open); with --plugin <module>, the schema of that plugin's studies.
 * Loads only the module named, never discovers others (they may not be built yet).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { coreStudySchema } from '../config/study-config.js';
import { standardSchema, studySchemaFor } from '../config/validate.js';
import type { AnyPlugin } from '../plugin.js';

const args = process.argv.slice(2);
const pluginIndex = args.indexOf('--plugin');
const pluginModule = pluginIndex >= 0 ? args.splice(pluginIndex, 2)[1] : undefined;
const out = args[0];
if (!out) throw new Error('usage: write-schema [--plugin <module>] <file>');
// The generic schema: any setting, so only `setting` is required (a preset may give the rest).
let schema: unknown = standardSchema({ ...coreStudySchema, $schema: 'http://json-schema.org/draft-07/schema#', required: ['setting'] });
if (pluginModule) {
  const mod = (await import(pathToFileURL(resolve(pluginModule)).href)) as { default: AnyPlugin };
  schema = studySchemaFor(mod.default);
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(schema, null, 2) + '\n');
