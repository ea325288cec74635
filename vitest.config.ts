import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // CI runs the suite on 2 cores, where vitest's default (cores - 1 workers) runs one file at a
    // time; many tests start processes (the CLI under tsx, deployments). On a loaded 2-core machine
    // tests took 7 to 15 times as long as in an idle CI run: e2e/cli's receipt test took 48 s of the
    // 60 s this was (7 s idle). A timeout here only bounds a hang; assertions about time are the
    // tests' own.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
