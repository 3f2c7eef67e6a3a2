import { defineConfig } from 'vitest/config';
import { sharedTest } from '../vitest.shared.js';

export default defineConfig({
  test: {
    include: ['generators/**/*.spec.ts', '*.spec.ts'],
    ...sharedTest,
  },
});
