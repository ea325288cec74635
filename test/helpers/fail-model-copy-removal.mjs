/**
 * Preloaded (`node --import`) into a `cloister` process: removing a private model copy
 * (enclave/model-staging.ts, a `cloister-model-…` directory) fails with EBUSY, as it may for real
 * (a test run as root can always remove it). Builtin ESM named exports are synced with the patched
 * module object, so `import { rm } from "node:fs/promises"` gets this one too.
 */
import fsp from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { basename } from "node:path";

const rm = fsp.rm;
fsp.rm = async (path, options) => {
  if (typeof path === "string" && basename(path).startsWith("cloister-model-")) {
    throw Object.assign(new Error(`EBUSY: resource busy or locked, rm '${path}'`), { code: "EBUSY" });
  }
  return rm(path, options);
};
syncBuiltinESMExports();
