/**
 * Builds the browser client into one ES module with esbuild: the SDK (client/browser.ts) for pages
 * of your own, or the page of `cloister web` (client/web/page.ts, which includes the SDK).
 *
 * The build refuses any `node:` import: the code a browser gets must be the platform-neutral
 * verifier and sealing code, not a copy that quietly lacks a module. The one Node-only module on
 * the SDK's path, the node:http transport (loaded only when running on Node.js), is replaced by
 * fetch, so the bundle uses fetch wherever it runs.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Plugin } from "esbuild";

export type BrowserEntry = "sdk" | "page";

const ENTRIES: Record<BrowserEntry, string> = {
  sdk: fileURLToPath(new URL("../browser.ts", import.meta.url)),
  page: fileURLToPath(new URL("./page.ts", import.meta.url)),
};

const NODE_TRANSPORT = /(^|[/\\])node-transport\.ts$/;
const TRANSPORT = fileURLToPath(new URL("../transport.ts", import.meta.url));
const CLIENT_ERRORS = fileURLToPath(new URL("../errors.ts", import.meta.url));
const SIMULATOR_ANCHORS = /(^|[/\\])attestation[/\\]sim[/\\]anchors\.ts$/;
const STUB_NAMESPACE = "cloister-browser-stub";

export class BrowserBuildError extends Error {
  readonly code = "BROWSER_BUILD_FAILED";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BrowserBuildError";
  }
}

/**
 * Refuses node: imports; turns the node:http transport into fetch; without `simulator`, replaces the
 * simulator's roots (and its public seed) with a refusal, for pages that must never trust it.
 */
export function browserPlugin(options: { simulator: boolean }): Plugin {
  return {
    name: "cloister-browser-only",
    setup(build) {
      if (!options.simulator) {
        build.onResolve({ filter: SIMULATOR_ANCHORS }, (args) => ({
          path: args.path,
          namespace: NO_SIMULATOR_NAMESPACE,
        }));
        build.onLoad({ filter: /.*/, namespace: NO_SIMULATOR_NAMESPACE }, () => ({
          contents: [
            `import { ClientError } from ${JSON.stringify(CLIENT_ERRORS)};`,
            "export function insecureSimulatorAnchors() {",
            '  throw new ClientError("configuration", "SIMULATOR_NOT_IN_BUILD", "this build of the client has no simulator roots: a policy with trustSimulator cannot be used with it");',
            "}",
          ].join("\n"),
          resolveDir: dirname(CLIENT_ERRORS),
          loader: "js",
        }));
      }
      browserOnly.setup(build);
    },
  };
}

const NO_SIMULATOR_NAMESPACE = "cloister-no-simulator";

/** Refuses node: imports; turns the node:http transport into fetch. Exported for tests. */
export const browserOnly: Plugin = {
  name: "cloister-browser-only",
  setup(build) {
    build.onResolve({ filter: NODE_TRANSPORT }, (args) => ({ path: args.path, namespace: STUB_NAMESPACE }));
    // In the bundle, the "node transport" is fetch, wherever the bundle runs (browsers, workers,
    // Deno, even Node.js): it carries no node:http.
    build.onLoad({ filter: /.*/, namespace: STUB_NAMESPACE }, () => ({
      contents: [
        `import { fetchTransport } from ${JSON.stringify(TRANSPORT)};`,
        "export function nodeTransport() { return fetchTransport(globalThis.fetch.bind(globalThis)); }",
      ].join("\n"),
      resolveDir: dirname(TRANSPORT),
      loader: "js",
    }));
    build.onResolve({ filter: /^node:/ }, (args) => ({
      errors: [{ text: `${args.path} imported by ${args.importer}: the browser build takes no Node.js modules` }],
    }));
  },
};

/** The bundle's source text (ES2022 module) and the repository files it contains. */
export async function buildBrowserBundle(
  entry: BrowserEntry,
  options: { minify?: boolean; simulator?: boolean } = {},
): Promise<{ code: string; inputs: string[] }> {
  const { build } = await import("esbuild");
  let result: Awaited<ReturnType<typeof build>>;
  try {
    result = await build({
      entryPoints: [ENTRIES[entry]],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: ["es2022"],
      minify: options.minify ?? true,
      legalComments: "eof",
      metafile: true,
      logLevel: "silent",
      plugins: [browserPlugin({ simulator: options.simulator ?? true })],
    });
  } catch (error) {
    const errors = (error as { errors?: { text: string }[] }).errors ?? [];
    throw new BrowserBuildError(
      `browser build of ${entry}: ${errors.map((e) => e.text).join("; ") || "esbuild failed"}`,
      { cause: error },
    );
  }
  const output = result.outputFiles?.[0];
  if (output === undefined) throw new BrowserBuildError(`browser build of ${entry}: esbuild wrote no output`);
  return { code: output.text, inputs: Object.keys(result.metafile?.inputs ?? {}) };
}
