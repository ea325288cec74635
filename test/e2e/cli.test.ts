/**
 * End to end through the command line: `cloister attest` and `cloister chat` as separate processes
 * against a real simulated deployment on 127.0.0.1. A policy that does not match makes `attest`
 * exit non-zero naming the stage and the code, and `chat` print no answer and send nothing sealed.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_DOCUMENT_WARNING } from "../../client/cli/run-receipt.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { type CliRun, envWithoutApiKey, runCloister } from "../helpers/cli.ts";
import {
  bootDeployment,
  connectionArgs,
  type E2eDeployment,
  policyInitArgs,
  writeWrongMeasurementPolicy,
} from "./helpers/deployment.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";

let deployment: E2eDeployment;
let badPolicyPath: string;

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp");
  badPolicyPath = await writeWrongMeasurementPolicy(deployment, "wrong-measurement-policy.json");
});

afterAll(async () => {
  await deployment?.stop();
});

function cloister(...args: string[]): Promise<CliRun> {
  return runCloister(args, { cwd: deployment.dir, env: envWithoutApiKey() });
}

const connection = (policy: string) => connectionArgs(deployment, policy);

describe("cloister attest / chat against a real deployment", () => {
  it("attest --json exits 0 with the verified fields; attest prints a summary; chat PROMPT prints the answer", async () => {
    // Side by side: each is a separate process that verifies the enclave on its own.
    const [json, human, chat] = await Promise.all([
      cloister("attest", ...connection(deployment.files.policyPath), "--json"),
      cloister("attest", ...connection(deployment.files.policyPath)),
      cloister("chat", ...connection(deployment.files.policyPath), "What does the enclave do?"),
    ]);
    expect({ code: json.code, stderr: json.stderr }).toEqual({ code: 0, stderr: "" });
    const out = JSON.parse(json.stdout);
    expect(out).toMatchObject({ valid: true, tee: "sev-snp", simulated: true });
    const snp = deployment.files.policy.attestation.snp;
    expect([out.measurement]).toEqual(snp !== null && Array.isArray(snp.measurements) ? snp.measurements : []);
    expect(deployment.files.policy.manifest.allowedModelDigests).toEqual([out.model.sha256]);
    expect(out.service).toMatchObject({ name: "cloister-dev" });
    expect(out.documentDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(out.sealingKey).toMatch(/^[0-9a-f]{64}$/);
    expect(json.stdout).not.toContain(deployment.files.apiKey);
    // The rules the enclave applies to a prompt, as its attested manifest says them.
    expect(out.requestPolicy).toEqual(DEV_MANIFEST.requestPolicy);
    expect(out.audit).toEqual(DEV_MANIFEST.audit);
    // The tee constraints the evidence was held to, as signed.
    const { allowedMeasurements, minimumTcb, policyFlags } = DEV_MANIFEST.tee;
    expect(out.manifestTee).toEqual({ allowedMeasurements, minimumTcb, policyFlags });

    expect({ code: human.code, stderr: human.stderr }).toEqual({ code: 0, stderr: "" });
    expect(human.stdout).toContain("enclave verified");
    expect(human.stdout).toContain("SIMULATED");
    expect(human.stdout).toContain(out.measurement);
    expect(human.stdout).toContain(
      "  rules        allow by default; the first rule that matches decides: block max-prompt-tokens (maxPromptTokens over 1536), block no-private-keys (pattern)\n",
    );
    expect(human.stdout).toContain(
      "  PII          redact: email, phone, credit_card, iban, us_ssn, ip_address, secret_key\n",
    );
    expect(human.stdout).toContain("  audit        on (prompt hash recorded, answer hash recorded)\n");
    expect(human.stdout).toContain(
      "  measurements manifest allows any MEASUREMENT (reason: development on the simulator: its measurement changes with every code change)\n",
    );
    expect(human.stdout).toContain(
      "  TEE flags    manifest: debug not allowed, migration agent not allowed, SMT allowed\n",
    );
    // What the policy itself lets through is said, not only what was verified.
    expect(out.policyWarnings).toEqual(["trusts the INSECURE simulator: anyone can forge its evidence"]);
    expect(human.stdout).toContain("WARNING: policy: trusts the INSECURE simulator");

    expect({ code: chat.code, stderr: chat.stderr }).toEqual({ code: 0, stderr: "" });
    expect(chat.stdout).toBe(`${GREEDY_CHAT_ANSWER}\n`);
  });

  it("a policy that does not match: attest exits 1 naming stage and code; chat prints no answer, sends nothing", async () => {
    const sealedBefore = deployment.hostAccessLog().filter((r) => r.path === "/v1/sealed").length;
    const [json, chat] = await Promise.all([
      cloister("attest", ...connection(badPolicyPath), "--json"),
      cloister("chat", ...connection(badPolicyPath), "What does the enclave do?"),
    ]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      valid: false,
      kind: "attestation",
      stage: "appraise",
      code: "SNP_MEASUREMENT_NOT_ALLOWED",
    });
    expect(chat.code).toBe(1);
    expect(chat.stdout).toBe("");
    expect(chat.stderr).toMatch(/^cloister: SNP_MEASUREMENT_NOT_ALLOWED: attestation failed at stage appraise/);

    // Barrier: a request sent now is logged after everything the host handled before it.
    const healthz = () => deployment.hostAccessLog().filter((r) => r.path === "/healthz").length;
    const before = healthz();
    await fetch(`${deployment.running.hostUrl}/healthz`);
    await deployment.waitForLog(() => healthz() > before);
    expect(deployment.hostAccessLog().filter((r) => r.path === "/v1/sealed").length).toBe(sealedBefore);
  });
});

describe("cloister chat, the prompt kept off the command line", () => {
  it("reads it from a pipe, from --prompt-file - and from --prompt-file FILE: the same answer as the argument", async () => {
    const env = envWithoutApiKey();
    const prompt = "What does the enclave do?";
    const promptFile = join(deployment.dir, "chat-prompt.txt");
    await writeFile(promptFile, prompt);
    const args = ["chat", ...connection(deployment.files.policyPath)];
    const [piped, dash, fromFile] = await Promise.all([
      runCloister(args, { input: prompt, cwd: deployment.dir, env }),
      runCloister([...args, "--prompt-file", "-"], { input: prompt, cwd: deployment.dir, env }),
      runCloister([...args, "--prompt-file", promptFile], { input: "", cwd: deployment.dir, env }),
    ]);
    for (const run of [piped, dash, fromFile]) {
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
      expect(run.stdout).toBe(`${GREEDY_CHAT_ANSWER}\n`);
    }
  });
});

describe("cloister audit checkpoint, then audit verify --checkpoint, against a real deployment", () => {
  it("the stored log verifies complete against a fresh checkpoint; the log with its last record cut does not", async () => {
    // Two records of its own (side by side), so that the log cut below keeps one: the test does not
    // depend on the records earlier tests of the file left.
    const chats = await Promise.all(
      [1, 2].map(() => cloister("chat", ...connection(deployment.files.policyPath), "What does the enclave do?")),
    );
    expect(chats.map((chat) => chat.code)).toEqual([0, 0]);
    const checkpointFile = join(deployment.dir, "checkpoint.json");
    const human = await cloister(
      "audit",
      "checkpoint",
      ...connection(deployment.files.policyPath),
      "--out",
      checkpointFile,
    );
    expect({ code: human.code, stderr: human.stderr }).toEqual({ code: 0, stderr: "" });
    expect(human.stdout).toMatch(/^audit checkpoint verified: \d+ records? /);
    const json = await cloister("audit", "checkpoint", ...connection(deployment.files.policyPath), "--json");
    expect(json.code).toBe(0);
    const fresh = JSON.parse(json.stdout) as { count: number; signingKey: string; documentDigest: string };
    expect(fresh.count).toBeGreaterThanOrEqual(2);
    expect(human.stdout).toContain(fresh.signingKey);
    // It names this boot's log file, not a FILE to guess among the boots' logs, and where the
    // audit directory is whatever --dir up was given.
    expect(human.stdout).toContain("AUDIT_DIR: the host's --audit-dir, DIR/audit under cloister up --dir DIR)");
    expect(human.stdout).toContain(
      `cloister audit verify --log AUDIT_DIR/${fresh.documentDigest.slice(0, 16)}.jsonl --key ${fresh.signingKey}`,
    );

    // The host stores records right after each answer: wait until it has all of them.
    const logFile = join(deployment.dir, "audit", `${fresh.documentDigest.slice(0, 16)}.jsonl`);
    const written = JSON.parse((await readFile(checkpointFile, "utf8")).trim()).checkpoint.count as number;
    let lines: string[] = [];
    for (const deadline = Date.now() + 5_000; lines.length < written && Date.now() < deadline; ) {
      lines = (await readFile(logFile, "utf8").catch(() => "")).split("\n").filter((l) => l.length > 0);
      if (lines.length < written) await new Promise((r) => setTimeout(r, 20));
    }
    const verify = (log: string) =>
      cloister("audit", "verify", "--log", log, "--key", fresh.signingKey, "--checkpoint", checkpointFile);
    const whole = await verify(logFile);
    expect({ code: whole.code, stderr: whole.stderr }).toEqual({ code: 0, stderr: "" });
    expect(whole.stdout).toMatch(/^audit log valid: \d+ records?,/);

    const cutFile = join(deployment.dir, "cut.jsonl");
    await writeFile(cutFile, `${lines.slice(0, written - 1).join("\n")}\n`);
    const cut = await verify(cutFile);
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/AUDIT_LOG_TRUNCATED/);

    // --out never overwrites, unless --force: then a fresh checkpoint replaces the older one.
    const again = await cloister(
      "audit",
      "checkpoint",
      ...connection(deployment.files.policyPath),
      "--out",
      checkpointFile,
    );
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--out \S+: already exists \(EEXIST\); pass --force to replace it/);
    const older = await readFile(checkpointFile, "utf8");
    expect(JSON.parse(older.trim()).checkpoint.count).toBe(written);
    const forced = await cloister(
      "audit",
      "checkpoint",
      ...connection(deployment.files.policyPath),
      "--out",
      checkpointFile,
      "--force",
    );
    expect(forced.code, forced.stderr).toBe(0);
    const replaced = await readFile(checkpointFile, "utf8");
    expect(replaced).not.toBe(older);
    expect(JSON.parse(replaced.trim()).checkpoint.count).toBeGreaterThanOrEqual(written);
  });
});

describe("cloister chat --json, then receipt verify, against a real deployment", () => {
  it("the answer's receipt verifies offline under the attested key, for that answer only", async () => {
    const savedDocument = join(deployment.dir, "verified-document.jws");
    const [chat, attest] = await Promise.all([
      cloister("chat", ...connection(deployment.files.policyPath), "--json", "What does the enclave do?"),
      cloister("attest", ...connection(deployment.files.policyPath), "--json", "--document-out", savedDocument),
    ]);
    expect({ code: chat.code, stderr: chat.stderr }).toEqual({ code: 0, stderr: "" });
    const answer = JSON.parse(chat.stdout) as { text: string; receipt: string; signingKey: string };
    expect(answer.text).toBe(GREEDY_CHAT_ANSWER);
    const key = (JSON.parse(attest.stdout) as { signingKey: string }).signingKey;
    expect(answer.signingKey).toBe(key);
    const receiptFile = join(deployment.dir, "answer.json");
    const answerFile = join(deployment.dir, "answer.txt");
    await writeFile(receiptFile, chat.stdout);
    await writeFile(answerFile, answer.text);
    const verify = (...extra: string[]) =>
      cloister("receipt", "verify", "--receipt", receiptFile, "--key", key, ...extra);

    const ok = await verify("--answer-file", answerFile, "--json");
    // Without --document the key is trusted as given: verified, with a warning saying so.
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: NO_DOCUMENT_WARNING });
    expect(JSON.parse(ok.stdout)).toMatchObject({
      valid: true,
      answerChecked: true,
      keyBoundToDocument: false,
      finishReason: expect.stringMatching(/^(stop|length)$/),
    });
    // With the document saved from the host (GET /v1/attestation), the receipt names it and its key.
    const documentFile = join(deployment.dir, "attestation.json");
    const response = await fetch(`${deployment.running.hostUrl}/v1/attestation`, {
      headers: { authorization: `Bearer ${deployment.files.apiKey}` },
    });
    await writeFile(documentFile, await response.text());
    const bound = await verify("--answer-file", answerFile, "--document", documentFile, "--json");
    expect({ code: bound.code, stderr: bound.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(bound.stdout)).toMatchObject({ valid: true, keyBoundToDocument: true });
    // The same, with the document `cloister attest --document-out` saved after verifying it.
    const fromAttest = await verify("--answer-file", answerFile, "--document", savedDocument, "--json");
    expect({ code: fromAttest.code, stderr: fromAttest.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(fromAttest.stdout)).toMatchObject({ valid: true, keyBoundToDocument: true });
    // --document-out refuses a file that exists; --force replaces it (with the same document here).
    const saved = await readFile(savedDocument, "utf8");
    const documentOut = [...connection(deployment.files.policyPath), "--document-out", savedDocument];
    const refusedOut = await cloister("attest", ...documentOut);
    expect(refusedOut.code).toBe(2);
    expect(refusedOut.stderr).toMatch(/--document-out \S+: already exists \(EEXIST\); pass --force/);
    const forced = await cloister("attest", ...documentOut, "--force");
    expect(forced.code).toBe(0);
    expect(await readFile(savedDocument, "utf8")).toBe(saved);
    const allowed = deployment.files.policy.manifest.allowedModelDigests;
    expect(Array.isArray(allowed) ? allowed : []).toContain(JSON.parse(ok.stdout).modelSha256);

    await writeFile(answerFile, `${answer.text} (edited)`);
    const otherAnswer = await verify("--answer-file", answerFile);
    expect(otherAnswer.code).toBe(1);
    expect(otherAnswer.stderr).toMatch(/^cloister: RECEIPT_MISMATCH: receipt answerHash/m);

    const forged = JSON.stringify({
      ...answer,
      receipt: answer.receipt.replace('"completionTokens":', '"completionTokens":1'),
    });
    await writeFile(receiptFile, forged);
    const tampered = await verify("--json");
    expect(tampered.code).toBe(1);
    expect(JSON.parse(tampered.stdout)).toMatchObject({ valid: false, code: "RECEIPT_INVALID" });

    const wrongKey = await cloister("receipt", "verify", "--receipt", receiptFile, "--key", "zz");
    expect(wrongKey.code).toBe(2);
  });
});

describe("cloister audit find: a client shows the host-stored record is about its prompt and answer", () => {
  /** `cloister audit find --log LOG … --json`, until it finds the record (the host collects records shortly after each answer). */
  async function findOnceCollected(log: string, ...args: string[]): Promise<CliRun | undefined> {
    let found: CliRun | undefined;
    for (let i = 0; i < 50; i++) {
      found = await cloister("audit", "find", "--log", log, ...args, "--json");
      if (found.code === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return found;
  }

  it("finds the record of a chat --json answer in the stored log and opens its commitments", async () => {
    const prompt = "Where do the weights live?";
    const [chat, attest] = await Promise.all([
      cloister("chat", ...connection(deployment.files.policyPath), "--json", prompt),
      cloister("attest", ...connection(deployment.files.policyPath), "--json"),
    ]);
    expect({ code: chat.code, stderr: chat.stderr }).toEqual({ code: 0, stderr: "" });
    const answer = JSON.parse(chat.stdout) as { text: string; audit: { requestIdHash: string; opening: string } };
    expect(answer.audit.requestIdHash).toMatch(/^[0-9a-f]{64}$/);
    expect(answer.audit.opening).toMatch(/^[0-9a-f]{64}$/);
    const documentDigest = (JSON.parse(attest.stdout) as { documentDigest: string }).documentDigest;
    const key = (JSON.parse(attest.stdout) as { signingKey: string }).signingKey;
    const chatFile = join(deployment.dir, "find-chat.json");
    const promptFile = join(deployment.dir, "find-prompt.txt");
    await writeFile(chatFile, chat.stdout);
    await writeFile(promptFile, prompt);
    const log = join(deployment.dir, "audit", `${documentDigest.slice(0, 16)}.jsonl`);
    const find = (...extra: string[]) => cloister("audit", "find", "--log", log, "--key", key, ...extra);

    const found = await findOnceCollected(log, "--key", key, "--chat-json", chatFile, "--prompt-file", promptFile);
    expect({ code: found?.code, stderr: found?.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(found?.stdout ?? "{}")).toMatchObject({
      found: true,
      logValid: true,
      record: { decision: "allow", blockedBy: null },
      matches: { prompt: true, answer: true },
    });
    // The opening itself never reached the host's log.
    expect((await readFile(log, "utf8")).includes(answer.audit.opening)).toBe(false);
    expect(deployment.logs.join("\n").includes(answer.audit.opening)).toBe(false);

    await writeFile(promptFile, `${prompt} `);
    const otherPrompt = await find("--chat-json", chatFile, "--prompt-file", promptFile);
    expect(otherPrompt.code).toBe(1);
    expect(otherPrompt.stdout).toContain("prompt: DOES NOT match the record's commitment");
    expect(otherPrompt.stderr).toMatch(/^cloister: AUDIT_COMMITMENT_MISMATCH: /m);

    const missing = await find("--request-id-hash", "0".repeat(64));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^cloister: AUDIT_RECORD_NOT_FOUND: no record with requestIdHash 0{64}/m);

    const noOpening = await find("--request-id-hash", answer.audit.requestIdHash, "--prompt-file", promptFile);
    expect(noOpening.code).toBe(2);
    expect(noOpening.stderr).toContain("need the record's opening");
  });

  it("finds the record of a refused prompt: chat --json prints the refusal with its audit reference", async () => {
    const prompt = "keep -----BEGIN EC PRIVATE KEY----- safe";
    const chat = await cloister("chat", ...connection(deployment.files.policyPath), "--json", prompt);
    expect(chat.code).toBe(1);
    const refusal = JSON.parse(chat.stdout) as {
      error: { kind: string; code: string; reason: string };
      enclave: string;
      audit: { requestIdHash: string; opening: string };
    };
    expect(refusal.error).toMatchObject({ kind: "policy", code: "POLICY_BLOCKED" });
    expect(refusal.error.reason).toContain("no-private-keys");
    expect(refusal.audit.opening).toMatch(/^[0-9a-f]{64}$/);
    expect(chat.stdout).not.toContain("EC PRIVATE KEY");
    const chatFile = join(deployment.dir, "refused-chat.json");
    const promptFile = join(deployment.dir, "refused-prompt.txt");
    await writeFile(chatFile, chat.stdout);
    await writeFile(promptFile, prompt);
    const log = join(deployment.dir, "audit", `${refusal.enclave.slice(0, 16)}.jsonl`);
    const found = await findOnceCollected(log, "--chat-json", chatFile, "--prompt-file", promptFile);
    expect({ code: found?.code, stderr: found?.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(found?.stdout ?? "{}")).toMatchObject({
      found: true,
      logValid: true,
      keySource: "chat-json",
      record: { decision: "block", blockedBy: "policy", ruleId: "no-private-keys" },
      matches: { prompt: true },
    });
    expect((await readFile(log, "utf8")).includes(refusal.audit.opening)).toBe(false);
  });
});

describe("cloister policy init against a real deployment", () => {
  it("writes a policy pinning what the deployment presents, which then verifies it; simulated evidence only when asked", async () => {
    const base = policyInitArgs(deployment);
    const refused = await cloister(...base);
    // Bad input, as every refusal an option lifts (kbs serve's --allow-simulator-on-network too).
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^cloister: POLICY_INIT_SIMULATED: .*pass --allow-simulator/m);

    const out = join(deployment.dir, "pinned-policy.json");
    const made = await cloister(...base, "--allow-simulator", "--out", out);
    expect({ code: made.code, stdout: made.stdout }).toEqual({ code: 0, stdout: "" });
    expect(made.stderr).toContain("note: INSECURE: the policy trusts the simulator");
    expect(made.stderr).toContain("checked: the policy accepts this deployment now");
    const policy = JSON.parse(await readFile(out, "utf8"));
    expect(policy.attestation.snp.measurements).toEqual(deployment.files.policy.attestation.snp?.measurements);
    expect(policy.manifest.allowedModelDigests).toEqual(deployment.files.policy.manifest.allowedModelDigests);

    const attest = await cloister("attest", ...connection(out), "--json");
    expect(attest.code, attest.stderr).toBe(0);
    expect(JSON.parse(attest.stdout)).toMatchObject({ valid: true, simulated: true });

    const again = await cloister(...base, "--allow-simulator", "--out", out);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(": already exists (EEXIST); pass --force to replace it");

    const stranger = join(deployment.dir, "stranger.jwk");
    await writeFile(
      stranger,
      JSON.stringify({ kty: "OKP", crv: "Ed25519", x: Buffer.alloc(32, 7).toString("base64url") }),
    );
    const wrongOperator = await cloister(
      "policy",
      "init",
      "--url",
      deployment.running.hostUrl,
      "--operator-key",
      stranger,
      "--api-key-file",
      deployment.files.apiKeyPath,
      "--allow-simulator",
    );
    expect(wrongOperator.code).toBe(1);
    expect(wrongOperator.stderr).toMatch(/^cloister: MANIFEST_/m);
  });
});
