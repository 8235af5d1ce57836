import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    // Light on CPU: the suite is fast (fake timers), one worker is plenty.
    maxWorkers: 1,
    testTimeout: 20_000,
  },
});
