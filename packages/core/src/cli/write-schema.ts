/** Build step: writes the generic study schema (options open) for editors. */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { coreStudySchema } from '../config/study-config.js';

const out = process.argv[2];
if (!out) throw new Error('usage: write-schema <file>');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(coreStudySchema, null, 2) + '\n');
