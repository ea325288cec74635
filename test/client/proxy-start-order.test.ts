/**
 * `cloister proxy` verifies the enclave before it listens (client/cli/run-proxy.ts; README "Using an
 * OpenAI-compatible app": "If the proxy cannot verify the enclave it does not start"): while the
 * host's attestation answer is held, nothing listens yet; an enclave the policy refuses never gets a
 * proxy in front of it, not even for a moment. The order is made by holding the attestation request,
 * not by timing: listenLoopback is the real one, watched.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runProxy } from "../../client/cli/run-proxy.ts";
import { listenLoopback } from "../../enclave/http.ts";
import { held } from "../helpers/held.ts";
import { capture, stopListenersRemover } from "../helpers/stops.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

vi.mock("../../enclave/http.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../enclave/http.ts")>();
  return { ...actual, listenLoopback: vi.fn(actual.listenLoopback) };
});

const dir = await testDirectory("cloister-proxy-start-order-");
const removeStopListeners = stopListenersRemover();
afterEach(async () => {
  vi.restoreAllMocks();
  vi.mocked(listenLoopback).mockClear();
  removeStopListeners();
  await closeServers();
});

/** A deployment whose first attestation answer waits for `release`, and the proxy's files for it. */
async function heldDeployment(name: string, measurements?: string[]) {
  const attestation = held();
  let first = true;
  const { url, paths } = await serveDeployment({
    hold: (path) => {
      if (path !== "/v1/attestation" || !first) return undefined;
      first = false;
      attestation.enter();
      return attestation.promise;
    },
  });
  const policy = structuredClone(await devPolicy()) as unknown as { attestation: { snp: { measurements: string[] } } };
  if (measurements !== undefined) policy.attestation.snp.measurements = measurements;
  const policyFile = join(dir, `${name}-policy.json`);
  await writeFile(policyFile, JSON.stringify(policy));
  const apiKeyFile = join(dir, `${name}-api-key`);
  await writeFile(apiKeyFile, "ck_test_0123456789abcdef\n", { mode: 0o600 });
  const options = { url, policy: policyFile, apiKeyFile, port: 0, tokenFile: join(dir, name, "proxy-token") };
  return { attestation, paths, options };
}

describe("cloister proxy: verified before it listens", () => {
  it("listens only once the enclave is verified, then answers on the address it prints", async () => {
    const { attestation, options } = await heldDeployment("passes");
    const written = capture();
    const banner = held();
    const write = vi.mocked(process.stdout.write);
    const captured = write.getMockImplementation()!;
    write.mockImplementation((chunk: string | Uint8Array) => {
      if (String(chunk).includes("Stop with Ctrl-C.")) banner.enter();
      return captured(chunk);
    });
    const run = runProxy(options);
    await attestation.entered;
    // The verification is under way (its attestation answer held): nothing listens yet.
    expect(vi.mocked(listenLoopback)).not.toHaveBeenCalled();
    attestation.settle();
    await banner.entered;
    expect(vi.mocked(listenLoopback)).toHaveBeenCalledTimes(1);
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(written.stdout.join(""))?.[1];
    expect(url).toBeDefined();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    process.emit("SIGTERM", "SIGTERM");
    await run;
  });

  it("never listens in front of an enclave its policy refuses, not even while it verifies", async () => {
    const { attestation, paths, options } = await heldDeployment("refused", ["cd".repeat(48)]);
    capture();
    const run = runProxy(options).catch((error: unknown) => error);
    await attestation.entered;
    expect(vi.mocked(listenLoopback)).not.toHaveBeenCalled();
    attestation.settle();
    expect(await run).toMatchObject({ code: "SNP_MEASUREMENT_NOT_ALLOWED" });
    expect(vi.mocked(listenLoopback)).not.toHaveBeenCalled();
    // Refused at the evidence: no prompt could have been sealed to it.
    expect(paths).not.toContain("/v1/sealed");
  });
});
