/**
 * JSON a command prints for a terminal has the invisible characters of untrusted text written as
 * \u escapes (stringifyJsonVisibly), as printJson's does: `cloister model run --json`'s answer text
 * (a model's output), the lines of `cloister proxy`'s log (the path of any request, token or not,
 * percent-decoded) and of `cloister kbs serve`'s (a refusal's reason names what a network client's
 * evidence held). U+202E (right-to-left override) would make a terminal show
 * the text after it reversed. A reader parses the same value.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { brokerLogLine } from "../../attestation/kbs/cli-impl.ts";
import type { ReleaseLogEntry } from "../../attestation/kbs/server.ts";
import { createProxyApp } from "../../client/proxy.ts";
import { runModelCommand } from "../../enclave/run-command.ts";
import { closeServers, connectTo } from "./helpers.ts";

const RLO = "\u202e";

vi.mock("../../enclave/engine.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../enclave/engine.ts")>();
  return {
    ...actual,
    // An engine whose answer holds U+202E, as a model's output may.
    openInferenceEngine: async () =>
      (await import("../helpers/answering-engine.ts")).answeringEngine([`safe ${RLO}txt.exe`]),
  };
});

afterEach(async () => {
  await closeServers();
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

describe("JSON printed for a terminal, with U+202E in an untrusted field", () => {
  it("cloister model run --json: the answer's text", async () => {
    const written: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    await runModelCommand({ model: "/nonexistent.gguf", sha256: "0".repeat(64), prompt: "p", json: true });
    const out = written.join("");
    expect(out).not.toContain(RLO);
    expect(out).toContain("safe \\u202etxt.exe");
    expect(JSON.parse(out)).toMatchObject({ text: `safe ${RLO}txt.exe`, stopReason: "eog" });
  });

  it("cloister proxy's log line: a request's path, percent-decoded", async () => {
    const { session } = await connectTo({});
    const log: string[] = [];
    const app = createProxyApp({ session, token: "t".repeat(32), log: (line) => log.push(line) });
    expect((await app.request("/gpj%E2%80%AE.exe")).status).toBe(404);
    expect(log).toHaveLength(1);
    expect(log[0]).not.toContain(RLO);
    expect(log[0]).toContain('"path":"/gpj\\u202e.exe"');
    expect(JSON.parse(log[0] as string)).toMatchObject({ type: "proxy", path: `/gpj${RLO}.exe`, status: 404 });
  });

  it("cloister kbs serve's log line: a refusal's reason", () => {
    const entry: ReleaseLogEntry = {
      event: "release",
      outcome: "refused",
      keyId: "k",
      code: "KBS_ATTESTATION_FAILED",
      stage: "appraise",
      reason: `found "${RLO}gpj.exe"`,
      tee: "sev-snp",
      simulated: false,
      measurement: null,
      manifestDigest: null,
      documentDigest: null,
      peer: "192.0.2.7:51234",
      ms: 1,
    };
    const line = brokerLogLine(entry);
    expect(line).not.toContain(RLO);
    expect(line).toContain('found \\"\\u202egpj.exe\\"');
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1)).not.toContain("\n");
    expect(JSON.parse(line)).toEqual(entry);
  });
});
