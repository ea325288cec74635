/**
 * When the enclave's manifest redacts PII (the dev manifest: mode "redact", every entity) and it
 * replaced some in the prompt, the answer is to the redacted prompt: `cloister chat` says so on
 * stderr after the answer (kinds and counts, from the sealed final frame), `--json` has `redacted`,
 * and so does an interactive session, after the turn whose prompt was redacted. Nothing is said
 * when nothing was redacted.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { errorText } from "../../client/cli/output.ts";
import { runChat } from "../../client/cli/run-client.ts";
import { ClientError } from "../../client/errors.ts";
import { redactionNote } from "../../client/redaction-note.ts";
import type { ManifestOverrides } from "../../manifests/dev.ts";
import { MAX_REDACTION_COUNT } from "../../sealed/frames.ts";
import { capture } from "../helpers/stops.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { madeUpEnclave } from "../helpers/verified-enclave.ts";
import { closeServers, devPolicy, enclaveSays, serveDeployment } from "./helpers.ts";

const ONE_EMAIL =
  'cloister: note: the enclave redacted 1 email address from your prompt before the model saw it (manifest PII mode "redact")\n';

const dir = await testDirectory("cloister-chat-redacted-");
const policy = join(dir, "policy.json");
await writeFile(policy, JSON.stringify(await devPolicy()));

/**
 * runChat of `prompt`, or (undefined) an interactive session of `lines`, against a dev deployment
 * of its own, which it closes (with the environment and mocks it set) before it returns.
 */
async function chat(
  prompt: string | undefined,
  options: {
    json?: boolean;
    lines?: string;
    older?: boolean;
    saysRedacted?: unknown;
    overrides?: ManifestOverrides;
  } = {},
) {
  try {
    if (options.older === true) asAnOlderEnclave();
    if ("saysRedacted" in options) enclaveSays(options.saysRedacted);
    const { url } = await serveDeployment(options.overrides === undefined ? {} : { overrides: options.overrides });
    vi.stubEnv("CLOISTER_API_KEY", "key");
    const written = capture();
    const lines = new PassThrough();
    lines.end(options.lines ?? "");
    const terminal = Object.assign(prompt === undefined ? lines : Readable.from([]), { isTTY: true });
    await runChat(prompt, { url, policy, ...(options.json === true ? { json: true } : {}) }, terminal);
    return { stdout: written.stdout.join(""), stderr: written.stderr.join("") };
  } finally {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    process.exitCode = undefined;
    await closeServers();
  }
}

/**
 * The enclave seals its final frame as a build from before `redacted` did: the same JSON without
 * that member (JSON.stringify drops it; the sealer's other JSON, and the client's, as ever).
 */
function asAnOlderEnclave(): void {
  const stringify = JSON.stringify;
  vi.spyOn(JSON, "stringify").mockImplementation((value: unknown, ...rest: unknown[]) => {
    const args = rest as [undefined, undefined];
    if (value !== null && typeof value === "object" && "frameCount" in value && "redacted" in value) {
      const { redacted: _, ...older } = value as Record<string, unknown>;
      return stringify(older, ...args);
    }
    return stringify(value, ...args);
  });
}

const NOT_SAID =
  'cloister: note: the enclave does not say whether it redacted PII from your prompt before the model saw it (manifest PII mode "redact"; an enclave built before it said so)\n';

describe("cloister chat, against an enclave built before the final frame said what it redacted", () => {
  it("shows the answer, and says the enclave does not say (never that nothing was redacted)", async () => {
    const { stdout, stderr } = await chat("write to bob@example.org about it", { older: true });
    expect(stdout).toBe("ok\n");
    expect(stderr).toBe(NOT_SAID);
  });

  it("--json has no redacted member (not said), where a newer enclave's has null or kinds", async () => {
    const { stdout, stderr } = await chat("write about the sea", { json: true, older: true });
    const answer = JSON.parse(stdout);
    expect(answer).toMatchObject({ text: "ok", receipt: expect.any(String) });
    expect("redacted" in answer).toBe(false);
    expect(stderr).toBe("");
  });
});

describe("cloister chat, when the enclave redacted PII from the prompt", () => {
  it("says on stderr, after the answer, which kinds and how many; the answer as ever", async () => {
    const { stdout, stderr } = await chat("write to bob@example.org about it");
    expect(stdout).toBe("ok\n");
    expect(stderr).toBe(ONE_EMAIL);
  });

  it("says nothing when nothing was redacted", async () => {
    expect(await chat("write about the sea")).toEqual({ stdout: "ok\n", stderr: "" });
  });

  it("--json has redacted: the kinds with counts, or null", async () => {
    const redacted = await chat("mail bob@example.org or alice@example.com, or call +1 415 555 0100", { json: true });
    expect(JSON.parse(redacted.stdout)).toMatchObject({ text: "ok", redacted: { email: 2, phone: 1 } });
    expect(redacted.stderr).toBe("");
    const plain = await chat("write about the sea", { json: true });
    expect(JSON.parse(plain.stdout)).toMatchObject({ text: "ok", redacted: null });
  });

  it("says so in an interactive session after the turn whose prompt was redacted", async () => {
    const { stdout, stderr } = await chat(undefined, { lines: "hello\nmail bob@example.org\n" });
    expect(stdout).toBe("enclave> ok\nenclave> ok\n");
    // Not after the first turn (nothing redacted), once after the second.
    const turns = stderr.split("you> ");
    expect(turns).toHaveLength(4);
    expect(turns[1]).toBe("");
    expect(turns[2]).toBe(ONE_EMAIL);
  });
});

describe("cloister chat, when the enclave says it redacted a kind its attested manifest does not", () => {
  it("the answer already shown stays, and the error after it says plainly it is not to be relied on", async () => {
    const overrides: ManifestOverrides = {
      requestPolicy: { pii: { mode: "redact", entities: ["phone"], reason: null } },
    };
    const failed = await chat("write about the sea", { saysRedacted: { email: 1 }, overrides }).catch(
      (error: unknown) => error,
    );
    // runChat throws it after the text (streamed before the final frame that carries the count);
    // the command prints it as errorText words it.
    expect(failed).toBeInstanceOf(ClientError);
    expect(errorText(failed)).toBe(
      "REDACTIONS_NOT_ATTESTED: response redacted: expected PII kinds among the attested manifest's entities, found email; any text of this answer already shown came from an enclave whose PII redaction did not match its attested manifest: do not rely on it",
    );
  });
});

/** A verified enclave whose manifest's PII mode is `mode` (undefined: a manifest that shows no PII settings). */
const attesting = (mode: string | undefined) =>
  madeUpEnclave(
    "sev-snp",
    mode === undefined ? { service: { name: "svc" } } : { requestPolicy: { pii: { mode, entities: [] } }, audit: {} },
  );

describe("redactionNote", () => {
  it("says an enclave that did not say (undefined) does not say, only when the attested mode redacts", () => {
    expect(redactionNote(undefined, attesting("redact"))).toBe(NOT_SAID.slice("cloister: note: ".length, -1));
    for (const enclave of [attesting("block"), attesting("off"), attesting(undefined), null]) {
      expect(redactionNote(undefined, enclave)).toBeNull();
    }
  });

  it("says the most a frame can say (a sum that passed it) as at least that many", () => {
    expect(redactionNote({ email: MAX_REDACTION_COUNT, phone: 2 }, attesting("redact"))).toBe(
      `the enclave redacted at least ${MAX_REDACTION_COUNT} email addresses and 2 phone numbers from your prompt before the model saw it (manifest PII mode "redact")`,
    );
  });

  it("names each kind with its count, in the manifest's entity order, plural from 2", () => {
    expect(redactionNote(null, attesting("redact"))).toBeNull();
    expect(redactionNote({ phone: 2, secret_key: 1, email: 3 }, attesting("redact"))).toBe(
      'the enclave redacted 3 email addresses, 2 phone numbers and 1 secret key from your prompt before the model saw it (manifest PII mode "redact")',
    );
  });
});
