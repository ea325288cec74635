/**
 * Preloaded (`node --import`) into a `cloister` process: removing a private model copy
 * (enclave/model-staging.ts, a `cloister-model-…` directory) fails with EBUSY, as it may for real
 * (a test run as root can always remove it), by node:fs/promises' rm and by node:fs's rmSync (the
 * try at exit) alike. Builtin ESM named exports are synced with the patched module objects, so
 * `import { rm } from "node:fs/promises"` gets this one too.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import { basename } from "node:path";

const isCopy = (path) => typeof path === "string" && basename(path).startsWith("cloister-model-");
const busy = (path) => Object.assign(new Error(`EBUSY: resource busy or locked, rm '${path}'`), { code: "EBUSY" });
const rm = fsp.rm;
fsp.rm = async (path, options) => {
  if (isCopy(path)) throw busy(path);
  return rm(path, options);
};
// The synchronous try at exit too (rmSync): the copy cannot be removed at all.
const rmSync = fs.rmSync;
fs.rmSync = (path, options) => {
  if (isCopy(path)) throw busy(path);
  return rmSync(path, options);
};
syncBuiltinESMExports();
