/**
 * Runs Node.js in a child process with a module hook that records every module it loads, so a test
 * sees the whole module graph a command or script really loads, not a mock's view
 * (test/client/simulator-naming-graph.test.ts, test/attestation/sim-anchors-graph.test.ts).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const REPO = new URL("../../", import.meta.url);

/** Appends the URL of every module loaded to the file named by CLOISTER_TEST_LOADED. */
const HOOKS = `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  appendFileSync(process.env.CLOISTER_TEST_LOADED, url + "\\n");
  return next(url, context);
}`;
const REGISTER = `import { register } from "node:module";
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;

export interface LoadedModulesRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The URL of every module loaded, in order. */
  readonly loaded: readonly string[];
  /** Repository-relative paths of the modules under attestation/sim/ that were loaded, sorted. */
  readonly sim: readonly string[];
}

/** The file URL of a repository file, as the hook records it. */
export const moduleUrl = (file: string): string => pathToFileURL(fileURLToPath(new URL(file, REPO))).href;

/** `node --import <hook> ...args` in the repository, with `env` added to this process's environment. */
export async function runRecordingModules(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<LoadedModulesRun> {
  const dir = await mkdtemp(join(tmpdir(), "cloister-loaded-modules-"));
  try {
    const loadedFile = join(dir, "loaded.txt");
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ["--import", `data:text/javascript,${encodeURIComponent(REGISTER)}`, ...args],
        { cwd: fileURLToPath(REPO), env: { ...process.env, ...env, CLOISTER_TEST_LOADED: loadedFile } },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
    const loaded = (await readFile(loadedFile, "utf8")).split("\n").filter((url) => url !== "");
    const simPrefix = new URL("attestation/sim/", REPO).href;
    const sim = loaded
      .filter((url) => url.startsWith(simPrefix))
      .map((url) => url.slice(REPO.href.length))
      .sort();
    return { ...result, loaded, sim };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
