/**
 * Preloaded (`node --import`) into a `cloister` process: readFileSync of a path that
 * CLOISTER_TEST_PROC_FILES (a JSON object of path to text, or to null for a file that is not there,
 * ENOENT) names answers with that instead of the file, so bin/cloister.js's first lines read a
 * /proc this test describes (another pid namespace's, one mounted hidepid=2). Every other read is
 * the real one. syncBuiltinESMExports: bin/cloister.js's `import { readFileSync } from "node:fs"`
 * then gets this one. And process.kill(PID, 0) of the pid CLOISTER_TEST_KILL_EPERM names fails
 * with EPERM, as for another user's process (a test running as root finds none).
 */
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";

const files = JSON.parse(process.env.CLOISTER_TEST_PROC_FILES ?? "{}");
const real = fs.readFileSync;
fs.readFileSync = (path, ...rest) => {
  if (typeof path === "string" && Object.hasOwn(files, path)) {
    const text = files[path];
    if (text === null) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return text;
  }
  return real(path, ...rest);
};
syncBuiltinESMExports();

const eperm = Number(process.env.CLOISTER_TEST_KILL_EPERM ?? Number.NaN);
const kill = process.kill.bind(process);
process.kill = (pid, signal) => {
  if (pid === eperm && signal === 0) throw Object.assign(new Error(`EPERM: kill ${pid}`), { code: "EPERM" });
  return kill(pid, signal);
};
