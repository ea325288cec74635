/**
 * Runs a test's module script in a node started with `--insecure-http-parser` (the only way to have
 * node's lenient parser as its default) and gives what it printed last, as JSON: the strict-parser
 * tests' one way of checking that the project's code asks for the strict parser whatever node's
 * own options say.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The repository's root: the child's working directory, and where its script imports from. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** `script`'s last line of output, parsed, from a node run with `--insecure-http-parser` (at most 60 s). */
export async function underInsecureParser<T>(script: string): Promise<T> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--insecure-http-parser", "--no-warnings", "--import", "tsx", "--input-type=module", "-e", script],
    { cwd: ROOT, timeout: 60_000 },
  );
  return JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as T;
}
