/**
 * `cloister proxy` verifies the enclave before it listens (client/cli/run-proxy.ts; README "Using an
 * OpenAI-compatible app": "If the proxy cannot verify the enclave it does not start"): while the
 * host's attestation answer is held, nothing listens yet; an enclave the policy refuses never gets a
 * proxy in front of it, not even for a moment. The order is made by holding the attestation request,
 * not by timing: listenLoopback is the real one, watched. And its stop as README says it: a second
 * signal cuts the answers under way at once, logged as cut by the stop, and it returns (exit 0).
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runProxy } from "../../client/cli/run-proxy.ts";
import { DEFAULT_SHUTDOWN_GRACE_MS, listenLoopback } from "../../enclave/http.ts";
import { held } from "../helpers/held.ts";
import { watchTimeouts } from "../helpers/held-timers.ts";
import { capture, stopListenersRemover } from "../helpers/stops.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, devPolicy, type Script, serveDeployment } from "./helpers.ts";

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
async function heldDeployment(name: string, measurements?: string[], script?: Script) {
  const attestation = held();
  let first = true;
  const { url, paths } = await serveDeployment({
    ...(script === undefined ? {} : { script }),
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

describe("cloister proxy: a second signal", () => {
  it("cuts an answer under way at once, logs it cut by the stop (not an app gone), and returns", async () => {
    const engineHeld = held();
    const script: Script = [
      { type: "text", text: "first " },
      { until: engineHeld.promise },
      { type: "text", text: "x" },
    ];
    const { attestation, options } = await heldDeployment("second-signal", undefined, script);
    attestation.settle();
    const written = capture();
    const banner = held();
    const stopping = held();
    const write = { out: vi.mocked(process.stdout.write), err: vi.mocked(process.stderr.write) };
    const captured = { out: write.out.getMockImplementation()!, err: write.err.getMockImplementation()! };
    write.out.mockImplementation((chunk: string | Uint8Array) => {
      if (String(chunk).includes("Stop with Ctrl-C.")) banner.enter();
      return captured.out(chunk);
    });
    write.err.mockImplementation((chunk: string | Uint8Array) => {
      if (String(chunk).startsWith("shutting down (SIGTERM)")) stopping.enter();
      return captured.err(chunk);
    });
    // The stop's grace (what is left of DEFAULT_SHUTDOWN_GRACE_MS when it is set), watched: "at
    // once" is the proxy returning with it never run out, not a time.
    const grace = { set: 0, fired: 0 };
    const near = (ms: number | undefined) =>
      ms !== undefined && ms > DEFAULT_SHUTDOWN_GRACE_MS - 1000 && ms <= DEFAULT_SHUTDOWN_GRACE_MS;
    watchTimeouts(
      (ms) => {
        if (!near(ms)) return undefined;
        grace.set++;
        return grace;
      },
      (record) => record.fired++,
    );
    const run = runProxy(options);
    await banner.entered;
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(written.stdout.join(""))?.[1];
    const token = (await readFile(options.tokenFile, "utf8")).trim();
    const model = /model {8}(\S+)/.exec(written.stdout.join(""))?.[1];
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (let chunk = 0; chunk < 100 && !text.includes("first "); chunk++) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    expect(text).toContain("first ");
    // The first stop lets the answer go on (its engine is held: it would for the whole grace).
    process.emit("SIGTERM", "SIGTERM");
    await stopping.entered;
    // The second cuts it at once: the app's read fails, and the proxy returns.
    process.emit("SIGTERM", "SIGTERM");
    await expect(
      (async () => {
        for (let chunk = 0; chunk < 100; chunk++) if ((await reader.read()).done) return;
      })(),
    ).rejects.toThrow();
    await run;
    // One grace per listening socket (127.0.0.1, and ::1 where there is one), none run out.
    expect(grace.set).toBeGreaterThan(0);
    expect(grace.fired).toBe(0);
    engineHeld.settle();
    const streamLines = written.stderr
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { type: string; outcome?: string })
      .filter((line) => line.type === "proxy-stream");
    expect(streamLines.map((line) => line.outcome)).toEqual(["cut_at_stop"]);
  });
});
