import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'core/**/*.test.ts',
      'testkit/**/*.test.ts',
      'native/**/*.test.ts',
      'station/**/*.test.ts',
      'test/**/*.test.ts',
      'registry/**/*.test.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
  },
});
