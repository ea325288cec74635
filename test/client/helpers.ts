/**
 * An enclave booted in this process on a scripted engine, served on loopback, and an SDK session
 * attested to it for real: the host's /v1 paths are mapped straight to the enclave's routes.
 * Call `closeServers()` after each test.
 */
import { PassThrough, Writable } from "node:stream";
import { vi } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { chatInteractively } from "../../client/cli/run-client.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { type ConnectOptions, connect, type Session } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import type { GenerationEvent } from "../../enclave/engine.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { DEV_MANIFEST, type ManifestOverrides } from "../../manifests/dev.ts";
import { TINY_MODEL_SHA256 } from "../../models/tiny.ts";
import { bootWith, operatorPublicKey, type Pause, ScriptedEngine, usage } from "../enclave/helpers.ts";

export type Script = (GenerationEvent | Error | Pause)[];

const servers: RunningServer[] = [];

export async function closeServers(): Promise<void> {
  for (const s of servers.splice(0)) await s.close();
}

export const OK: Script = [
  { type: "text", text: "ok" },
  { type: "done", stopReason: "eog", usage },
];

export async function connectTo(
  options: {
    overrides?: ManifestOverrides;
    script?: Script;
    transport?: Transport;
    connect?: Partial<Pick<ConnectOptions, "now" | "reattestAfterMs" | "policy" | "signal" | "onVerified">>;
    tee?: "sim-snp" | "sim-tdx";
    /** Every path the session asked for, filled in even when connect() fails. */
    paths?: string[];
  } = {},
) {
  const script = options.script ?? OK;
  const enclave: Enclave = await bootWith(
    new ScriptedEngine(() => script),
    0,
    options.overrides ?? {},
    options.tee ?? "sim-snp",
  );
  const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
  servers.push(server);
  const paths: string[] = options.paths ?? [];
  const inner = options.transport ?? fetchTransport(fetch);
  const transport: Transport = (url, request) => {
    const path = new URL(url).pathname.replace(/^\/v1\//, "/");
    paths.push(path);
    return inner(`${server.url}${path}`, request);
  };
  const session = await connect({
    url: "http://enclave.test",
    policy: await devPolicy(),
    apiKey: "unused",
    transport,
    ...options.connect,
  });
  return { enclave, session, paths };
}

/** The client policy for a simulated enclave (sim-snp by default) booted with the dev manifest and the tiny model. */
export async function devPolicy(tee: "sim-snp" | "sim-tdx" = "sim-snp") {
  return simulatorClientPolicy({
    tee,
    measurement: toHex(await simulatedMeasurement(tee)),
    operatorKey: await operatorPublicKey(),
    modelSha256: TINY_MODEL_SHA256,
    serviceName: DEV_MANIFEST.service.name,
  });
}

/** Serves `fetchHandler` on loopback until `closeServers()`. */
export async function serve(fetchHandler: Parameters<typeof listen>[0]): Promise<string> {
  const server = await listen(fetchHandler, "127.0.0.1", 0);
  servers.push(server);
  return server.url;
}

/**
 * A loopback server that passes every request on to `target` (a serveDeployment's url), except
 * those `answer` answers itself (it gives undefined for the others).
 */
export async function serveInFront(
  target: string,
  answer: (request: Request) => Response | undefined,
): Promise<string> {
  return serve(async (request: Request) => {
    const own = answer(request);
    if (own !== undefined) return own;
    const { pathname, search } = new URL(request.url);
    const body = request.method === "POST" ? await request.arrayBuffer() : undefined;
    const contentType = request.headers.get("content-type");
    return fetch(`${target}${pathname}${search}`, {
      method: request.method,
      headers: {
        authorization: request.headers.get("authorization") ?? "",
        ...(contentType === null ? {} : { "content-type": contentType }),
      },
      ...(body === undefined ? {} : { body }),
    });
  });
}

/**
 * An enclave booted in this process (scripted engine, sim-snp, the dev manifest) behind a stand-in
 * host on loopback that maps /v1/… to the enclave's routes, as `cloister host` does, except that it
 * answers 401 UNAUTHENTICATED (as the host refuses a key) where `refuse(path, n)` says so (`n`: how
 * many requests for that path came before), and answers only once the promise `hold(path)` gives
 * has settled (none: at once). `authorizations`: the Authorization header of each request; `paths`:
 * the path of each, as it came in (before it is held).
 */
export async function serveDeployment(
  options: {
    script?: Script;
    refuse?: (path: string, n: number) => boolean;
    hold?: (path: string) => Promise<void> | undefined;
    overrides?: ManifestOverrides;
  } = {},
): Promise<{ url: string; authorizations: string[]; paths: string[] }> {
  const script = options.script ?? OK;
  const enclave = await bootWith(new ScriptedEngine(() => script), 0, options.overrides ?? {}, "sim-snp");
  // Served on node:http: the enclave's routes read their bodies from node's request.
  const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
  servers.push(server);
  const counts = new Map<string, number>();
  const authorizations: string[] = [];
  const paths: string[] = [];
  const url = await serve(async (request: Request) => {
    // The query (which enclave of a pool) is the host's to read, not the enclave's.
    const { pathname } = new URL(request.url);
    authorizations.push(request.headers.get("authorization") ?? "");
    paths.push(pathname);
    await options.hold?.(pathname);
    const n = counts.get(pathname) ?? 0;
    counts.set(pathname, n + 1);
    if (options.refuse?.(pathname, n) === true) {
      return Response.json(
        { error: { code: "UNAUTHENTICATED", message: "missing or unknown API key (Authorization: Bearer <key>)" } },
        { status: 401 },
      );
    }
    const contentType = request.headers.get("content-type");
    const body = request.method === "POST" ? await request.arrayBuffer() : undefined;
    return fetch(`${server.url}${pathname.replace(/^\/v1\//, "/")}`, {
      method: request.method,
      headers: contentType === null ? {} : { "content-type": contentType },
      ...(body === undefined ? {} : { body }),
    });
  });
  return { url, authorizations, paths };
}

/**
 * The enclave's final frame says `redacted`, whatever its pipeline found: its JSON is rewritten
 * inside the enclave before it is sealed (the host cannot change a sealed frame). Undone by
 * vi.restoreAllMocks.
 */
export function enclaveSays(redacted: unknown): void {
  const stringify = JSON.stringify;
  vi.spyOn(JSON, "stringify").mockImplementation((value: unknown, ...rest: unknown[]) => {
    const args = rest as [undefined, undefined];
    if (value !== null && typeof value === "object" && "frameCount" in value && "redacted" in value) {
      return stringify({ ...(value as object), redacted }, ...args);
    }
    return stringify(value, ...args);
  });
}

/**
 * Types `turns` into chat's interactive session (chatInteractively) on `session`, routing the
 * host to pool member `turns[i][1]` (`state.target`) before line i; what the session wrote to
 * stderr, its prompts left out.
 */
export async function typeIntoPool(
  session: Session,
  state: { target: number },
  turns: readonly (readonly [string, number])[],
  maxTokens?: number,
): Promise<string> {
  const input = new PassThrough();
  let notices = "";
  let turn = 0;
  const output = new Writable({
    write(chunk, _encoding, done) {
      const text = String(chunk);
      notices += text.replaceAll("you> ", "");
      if (text.includes("you> ")) {
        const next = turns[turn++];
        if (next === undefined) input.end();
        else {
          state.target = next[1];
          input.write(`${next[0]}\n`);
        }
      }
      done();
    },
  });
  const answers = Object.assign(new PassThrough(), { isTTY: false });
  answers.resume();
  await chatInteractively(session, maxTokens === undefined ? {} : { maxTokens }, { input, output, answers });
  return notices;
}
