import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['generators/**/*.spec.ts', '*.spec.ts'],
    testTimeout: 180_000,
    pool: 'forks',
  },
});
