/**
 * loadBrokerConfig (attestation/kbs/config.ts) refused part way: the model keys it read before the
 * refusal (and the one refused) serve nothing, and it zeroes them rather than leave them in memory until collected. Each
 * key modelKeyFromJwk returns is kept here to look at after the refusal.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { ModelKey } from "../../models/sealed.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const returned = vi.hoisted(() => [] as ModelKey[]);
vi.mock("../../models/sealed.ts", async (original) => {
  const real = await original<typeof import("../../models/sealed.ts")>();
  return {
    ...real,
    modelKeyFromJwk: (...args: Parameters<typeof real.modelKeyFromJwk>) => {
      const key = real.modelKeyFromJwk(...args);
      returned.push(key);
      return key;
    },
  };
});

const { loadBrokerConfig } = await import("../../attestation/kbs/config.ts");
const { generateModelKey, modelKeyToJwk } = await import("../../models/sealed.ts");

const dir = await testDirectory("cloister-kbs-config-zeroes-");

describe("a broker configuration refused part way", () => {
  it("zeroes the model key it read for the entry refused (its policy)", async () => {
    for (const id of ["first-v1", "second-v1"]) {
      await writeFile(join(dir, `${id}.jwk`), JSON.stringify(modelKeyToJwk(generateModelKey(id))), { mode: 0o600 });
    }
    const config = join(dir, "kbs.json");
    // keys.0's policy is refused after its key was read; keys.1 is never read.
    const keys = [
      { keyFile: "first-v1.jwk", policy: { notAPolicyField: true } },
      { keyFile: "second-v1.jwk", policy: {} },
    ];
    await writeFile(config, JSON.stringify({ version: 1, keys }), { mode: 0o644 });
    const error = await rejectionOf(loadBrokerConfig(config), Error);
    expect((error as { code?: string }).code).toBe("KBS_CONFIG_INVALID");
    expect(error.message).toMatch(/^keys\.0\.policy: /);
    expect(returned).toHaveLength(1);
    expect(returned[0]?.key).toHaveLength(32);
    expect(returned[0]?.key.every((byte) => byte === 0)).toBe(true);
  });
});
