/** `cloister web` (a local page that verifies and seals in the browser) and `cloister bundle`. */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { fileErrorCause, fileMessage, shellWord } from "../../attestation/bounded-read.ts";
import { listenLoopback } from "../../enclave/http.ts";
import { policyRisks } from "../policy.ts";
import { parseHostUrl } from "../sdk.ts";
import { buildBrowserBundle } from "../web/bundle.ts";
import { createWebApp } from "../web/server.ts";
import { DEFAULT_WEB_ORIGIN, type WebCommandOptions } from "./commands.ts";
import { loopbackListenError, refuseExistingOutput, UsageError, writeOutputFile } from "./output.ts";
import { plainHttpKeyWarning, readPolicyFile } from "./run-client.ts";
import { stopsAskedFor } from "./run-up.ts";

/**
 * Whether the host answers a preflight from `origin` (what the browser will ask before each call).
 * A redirect is not followed, as a browser follows none for a preflight: it counts as refused.
 * Exported for its tests.
 */
export async function hostAllowsOrigin(
  hostUrl: string,
  origin: string,
): Promise<"allowed" | "refused" | "unreachable"> {
  try {
    const response = await fetch(`${hostUrl}/v1/sealed`, {
      method: "OPTIONS",
      redirect: "manual",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
      signal: AbortSignal.timeout(3000),
    });
    await response.body?.cancel();
    return response.status === 204 && response.headers.get("access-control-allow-origin") === origin
      ? "allowed"
      : "refused";
  } catch {
    return "unreachable";
  }
}

/**
 * What `cloister web` prints once it listens: where, the host and the policy, then its warnings:
 * what the policy lets through beyond known images, a host that refuses or does not answer the
 * page's preflight, and plain http to another host, which the page's API key would cross in the
 * clear (plainHttpKeyWarning, as the other commands warn). Exported for its tests.
 */
export function webStartLines(options: {
  origin: string;
  hostUrl: string;
  policyFile: string;
  policyWarnings: readonly string[];
  access: "allowed" | "refused" | "unreachable";
}): string[] {
  const { origin, hostUrl, access } = options;
  const lines = [
    `Cloister web page on ${origin}/`,
    `  host         ${hostUrl}`,
    `  policy       ${shellWord(options.policyFile)}`,
    "  API key      the page asks for it (or open the page with #apiKey=… after its address, then confirm it)",
    "",
  ];
  // What the policy lets through beyond known images, as `attest` and `proxy` say it (the page
  // shows it too).
  for (const warning of options.policyWarnings) {
    lines.push(`WARNING: policy: ${warning}`);
  }
  if (lines.at(-1) !== "") lines.push("");
  const plainHttp = plainHttpKeyWarning(new URL(hostUrl), "the page");
  if (plainHttp !== null) lines.push(`${plainHttp}.`, "");
  if (access === "refused") {
    lines.push(
      `WARNING: the host does not allow this page's origin, so the browser will refuse its answers.`,
      `         Start it with --cors-origin ${origin} (cloister up allows ${DEFAULT_WEB_ORIGIN} only when given no --cors-origin).`,
      "",
    );
  } else if (access === "unreachable") {
    lines.push(`WARNING: the host at ${hostUrl} did not answer; the page will say so until it does.`, "");
  }
  lines.push("Stop with Ctrl-C.", "");
  return lines;
}

export async function runWeb(options: WebCommandOptions): Promise<void> {
  // The SDK's own check, as for the other commands: http(s), no user name or password (refused,
  // never repeated), so the URL printed here and put into the page carries no secret.
  const hostUrl = parseHostUrl(options.url, { url: "--url", apiKey: "the page's API key field" }).href.replace(
    /\/+$/,
    "",
  );
  const { json: policy, policy: parsed } = await readPolicyFile(options.policy);
  const { code } = await buildBrowserBundle("page");
  const app = createWebApp({ hostUrl, policy, maxTokens: options.maxTokens, script: code });
  const server = await listenLoopback(app.fetch, options.port).catch((error: unknown) => {
    throw loopbackListenError(error);
  });
  const access = await hostAllowsOrigin(hostUrl, server.url);
  const lines = webStartLines({
    origin: server.url,
    hostUrl,
    policyFile: options.policy,
    policyWarnings: policyRisks(parsed, "is sent your prompts"),
    access,
  });
  // Stops are handled before it says it listens: whoever reads that may stop it at once. As `up`
  // handles them (stopsAskedFor): the first closes the server, exit 0 as any server's stop asked
  // for; its output closed after a Ctrl-C is no second stop (`web 2>&1 | tee log`: the Ctrl-C ends
  // tee too, and the EPIPE of the line below exited 141 at once); a Ctrl-C more than
  // OUTPUT_CLOSED_SETTLE_MS after its output closed (`web | head -1`) says it is stopping already,
  // and the next exits at once (130); one sooner is taken for the Ctrl-C that closed it.
  const asked = stopsAskedFor(() => false, { startedProcesses: false });
  asked.booted();
  process.stdout.write(lines.join("\n"));
  const reason = await asked.signalled;
  process.stderr.write(`shutting down (${reason}) …\n`);
  await server.close();
}

export async function runBundle(options: {
  out: string;
  force?: boolean;
  minify: boolean;
  simulator: boolean;
}): Promise<void> {
  const existing = options.force === true ? "replace" : "refuse";
  try {
    await mkdir(dirname(options.out), { recursive: true });
  } catch (error) {
    const reason = `cannot write (${fileErrorCause(error, "write")})`;
    throw new UsageError(fileMessage(options.out, "--out", reason), { cause: error });
  }
  await refuseExistingOutput(options.out, "--out", existing);
  const { code, inputs } = await buildBrowserBundle("sdk", { minify: options.minify, simulator: options.simulator });
  await writeOutputFile(options.out, code, "--out", existing);
  process.stdout.write(
    `wrote ${shellWord(options.out)} (${(code.length / 1024).toFixed(0)} KiB, ${inputs.length} modules${options.simulator ? "" : ", no simulator"}): import { connect, parseClientPolicy } from it\n`,
  );
}
