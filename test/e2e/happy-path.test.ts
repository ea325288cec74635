/**
 * End to end, real processes on 127.0.0.1: a simulated SEV-SNP enclave and the untrusted host
 * (child processes), the SDK in this process, and a passive recording proxy in front of the host
 * so the test sees every byte the host receives and sends.
 *
 * 1. The happy path: attestation fields, the tiny model's exact greedy text, complete, usage.
 * 2. The host never sees plaintext: a prompt carrying a unique marker and the answer it gets
 *    appear nowhere in what the host received, sent, printed or stored (its audit directory), in
 *    any of raw text, hex, base64 or base64url; nor does any word of the prompt, or the text of
 *    any one frame of the answer. Likewise for a prompt the policy blocks and one whose e-mail
 *    address is redacted, whose error frame is also the size of a final frame.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Session } from "../../client/sdk.ts";
import { parseEnvelope } from "../../sealed/envelope.ts";
import { bootDeployment, type E2eDeployment } from "./helpers/deployment.ts";
import { drain } from "./helpers/stream.ts";
import { splitFrames, startTamperProxy, type TamperProxy } from "./helpers/tamper-proxy.ts";

/** The tiny model's greedy answer to a one-message chat (a bigram model: it depends on the template's end). */
const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
const GREEDY_CHAT_TOKENS = 19;

let deployment: E2eDeployment;
let proxy: TamperProxy;
let session: Session;

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp");
  proxy = await startTamperProxy(deployment.running.hostUrl);
  session = await connect({ url: proxy.url, policy: deployment.files.policy, apiKey: deployment.files.apiKey });
});

afterAll(async () => {
  await proxy?.close();
  await deployment?.stop();
});

describe("e2e happy path (sim-snp, real processes)", () => {
  it("connect verifies the enclave: TEE, simulated, the policy's measurement, the manifest's model", () => {
    const enclave = session.enclave;
    const policy = deployment.files.policy;
    expect(enclave.tee).toBe("sev-snp");
    expect(enclave.simulated).toBe(true);
    const snp = policy.attestation.snp;
    expect(snp).not.toBeNull();
    expect(Array.isArray(snp?.measurements) ? snp.measurements : []).toEqual([enclave.measurement]);
    expect(enclave.measurement).toMatch(/^[0-9a-f]{96}$/);
    expect(policy.manifest.allowedModelDigests).toEqual([enclave.manifest.model.sha256]);
    expect(enclave.manifest.service.name).toBe("cloister-dev");
    expect(enclave.sealingPublicKey).toHaveLength(32);
    expect(enclave.signingPublicKey).toHaveLength(32);
    expect(enclave.documentDigest).toMatch(/^[0-9a-f]{64}$/);
    // Verification happened through the host: one document fetch and one nonce challenge, nothing sealed yet.
    expect(proxy.observed("GET", "/v1/attestation")).toHaveLength(1);
    expect(proxy.observed("POST", "/v1/attestation/challenge")).toHaveLength(1);
    expect(proxy.observed("POST", "/v1/sealed")).toHaveLength(0);
  });

  it("attest() again gives a fresh nonce answer for the same document", async () => {
    const before = session.enclave.documentDigest;
    const again = await session.attest();
    expect(again.documentDigest).toBe(before);
    const challenges = proxy.observed("POST", "/v1/attestation/challenge");
    expect(challenges.length).toBeGreaterThanOrEqual(2);
    const nonces = challenges.map((c) => new TextDecoder().decode(c.clientBody));
    expect(new Set(nonces).size).toBe(nonces.length);
  });

  it("chat streams the tiny model's exact greedy answer in several frames, then usage", async () => {
    const asked = performance.now();
    const result = await drain(session.chat([{ role: "user", content: "What does the enclave do?" }]));
    const answered = performance.now() - asked;
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    const texts = result.events.filter((e) => e.type === "text");
    expect(texts.length).toBeGreaterThan(3);
    expect(result.events.at(-1)).toBe(result.done);
    expect(result.done?.finishReason).toBe("stop");
    expect(result.done?.usage.completionTokens).toBe(GREEDY_CHAT_TOKENS);
    expect(result.done?.usage.promptTokens).toBeGreaterThan(5);
    expect(result.done?.usage.promptTokens).toBeLessThan(100);
    // Milliseconds within this answer (not µs, not a clock reading): the enclave's first token came
    // after the request reached it and before the answer reached this client.
    expect(result.done?.usage.ttftMs).toBeGreaterThanOrEqual(0);
    expect(result.done?.usage.ttftMs).toBeLessThanOrEqual(answered);
  });

  it("every sealed request has its own ephemeral key and nonce, sequential or concurrent (keys made ahead are used once)", async () => {
    const before = proxy.observed("POST", "/v1/sealed").length;
    for (let i = 0; i < 3; i++)
      expect((await session.complete("The enclave", { maxTokens: 2 })).text.length).toBeGreaterThan(0);
    const concurrent = await Promise.all(
      Array.from({ length: 4 }, () => session.complete("The enclave", { maxTokens: 2 })),
    );
    for (const c of concurrent) expect(c.usage.completionTokens).toBe(2);
    const envelopes = proxy
      .observed("POST", "/v1/sealed")
      .slice(before)
      .map((e) => parseEnvelope(e.clientBody));
    expect(envelopes).toHaveLength(7);
    const keys = envelopes.map((e) => Buffer.from(e.ephemeralPublicKey).toString("hex"));
    const nonces = envelopes.map((e) => Buffer.from(e.nonce).toString("hex"));
    expect(new Set(keys).size).toBe(7);
    expect(new Set(nonces).size).toBe(7);
  });

  it("complete returns the greedy continuation; maxTokens cuts with finishReason length", async () => {
    const full = await session.complete("The enclave");
    expect(full.text).toBe(" keeps every prompt private inside a confidential virtual machine.");
    expect(full.finishReason).toBe("stop");
    expect(full.usage.completionTokens).toBe(10);
    expect(full.usage.promptTokens).toBeGreaterThan(0);

    const cut = await session.complete("The enclave", { maxTokens: 3 });
    expect(cut.finishReason).toBe("length");
    expect(cut.usage.completionTokens).toBe(3);
    expect(full.text.startsWith(cut.text)).toBe(true);
    expect(cut.text.length).toBeGreaterThan(0);
  });

  it("the host never sees plaintext: no prompt word, answer chunk or whole secret in what it received, sent, printed or stored", async () => {
    proxy.reset();
    const marker = `cloister-e2e-secret-${Date.now().toString(36)}-7f3a91c2`;
    // Only words no log line, audit record or framing has of its own, so that each one can be
    // searched for alone. (The tiny model's answer depends on the prompt's template end only.)
    const prompt = `Quokkas juggle marmalade beneath ${marker} zeppelins?`;
    const result = await drain(session.chat([{ role: "user", content: prompt }]));
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);

    // Wait until the host has logged the sealed request, so its log is complete for this exchange.
    const sent = proxy.observed("POST", "/v1/sealed")[0]?.hostBody.length;
    const sealedLine = await deployment.waitForLog(
      (l) => l.startsWith("[host] ") && l.includes('"/v1/sealed"') && l.includes(`"requestBytes":${sent},`),
    );
    expect(sealedLine).toContain('"status":200');

    const exchanges = proxy.observed("POST", "/v1/sealed");
    expect(exchanges).toHaveLength(1);
    const byHost: Uint8Array[] = [];
    for (const e of exchanges) {
      byHost.push(e.hostBody);
      if (e.hostResponse !== null) byHost.push(e.hostResponse);
    }
    // The host did carry the request and the answer (so this check has something to look at) …
    expect(exchanges[0]?.hostBody.length).toBeGreaterThan(new TextEncoder().encode(prompt).length);
    expect(exchanges[0]?.hostResponse?.length).toBeGreaterThan(new TextEncoder().encode(GREEDY_CHAT_ANSWER).length);
    const hostLines = deployment.logs.filter((l) => l.startsWith("[host"));
    expect(hostLines.length).toBeGreaterThan(0);
    // The host also writes the enclave's audit records to disk: one per opened sealed request.
    const answered = deployment.hostAccessLog().filter((r) => r.path === "/v1/sealed" && r.status === 200).length;
    const auditFiles = await hostAuditFiles(answered);
    expect(auditFiles.length).toBeGreaterThan(0);

    // … but none of the secrets, in any common encoding, in any byte or line of it: the whole
    // strings, and also each piece the answer came in (one frame's text each, so a single frame in
    // the clear fails this) and each word of the prompt. The pieces are at least 3 bytes (a shorter
    // run turns up by chance in a few kilobytes of ciphertext) and are searched for as UTF-8 bytes:
    // hex or base64 of a piece depends on where it starts.
    const chunks = result.events.flatMap((e) => (e.type === "text" ? [e.text] : []));
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.join("")).toBe(GREEDY_CHAT_ANSWER);
    const pieces = [
      ...chunks.filter((c) => Buffer.byteLength(c) >= 3),
      ...prompt.split(/\s+/).filter((w) => w.length >= 4),
    ];
    // Most of the answer is searched for piece by piece, not only as a whole.
    expect(pieces.filter((p) => GREEDY_CHAT_ANSWER.includes(p)).join("").length).toBeGreaterThan(
      GREEDY_CHAT_ANSWER.length * 0.8,
    );
    const secrets = [marker, prompt, GREEDY_CHAT_ANSWER, GREEDY_CHAT_ANSWER.trim(), "confidential virtual machine"];
    const needles = [...secrets.flatMap(encodings), ...pieces];
    const haystacks = [
      ...byHost.map((b) => Buffer.from(b).toString("latin1")),
      // The same bytes read as UTF-8 (a piece with non-ASCII text is found as text there).
      ...byHost.map((b) => Buffer.from(b).toString("utf8")),
      // The enclave is trusted, but it must not print prompts or answers either.
      deployment.logs.join("\n"),
      ...auditFiles,
    ];
    const leaks = (haystack: string) => needles.filter((needle) => haystack.includes(needle));
    for (const haystack of haystacks) expect(leaks(haystack)).toEqual([]);
    // The search itself finds a secret where one is present, in any of the encodings, and finds
    // one frame's text sent in the clear between clear headers.
    for (const encoded of encodings(GREEDY_CHAT_ANSWER)) expect(leaks(`{"x":"${encoded}"}`)).not.toEqual([]);
    const oneFrame = Buffer.concat([Buffer.alloc(28, 7), Buffer.from(`\x01${chunks[1]}\x80`), Buffer.alloc(16)]);
    expect(leaks(oneFrame.toString("latin1"))).toContain(chunks[1]);
  });

  it("nor on the refusal and redaction routes: a prompt the policy blocks, an e-mail address redacted; the error frame is the final frame's size", async () => {
    proxy.reset();
    // The host's access lines for /v1/sealed so far: the two requests below pad to one size, so a
    // line's requestBytes does not tell them apart, and the test waits for both lines by count.
    const sealedLines = () => deployment.hostAccessLog().filter((r) => r.path === "/v1/sealed").length;
    const linesBefore = sealedLines();
    const tag = Date.now().toString(36);
    const blockedMarker = `cloister-blocked-${tag}-b41d07e9`;
    const blocked = `Store -----BEGIN RSA PRIVATE KEY----- ${blockedMarker} MIIEowIBAAKCAQEA0gibberishzq`;
    const address = `quokka.${tag}.c0ffee@zeppelin-example.org`;
    const redacted = `Marmalade invoices go to ${address} tomorrow`;

    const refused = await drain(session.chat([{ role: "user", content: blocked }]));
    expect(refused.events).toEqual([]);
    expect(refused.error).toMatchObject({ name: "ClientError", kind: "policy", code: "POLICY_BLOCKED" });
    const answered = await drain(session.chat([{ role: "user", content: redacted }]));
    expect(answered.error).toBeUndefined();
    expect(answered.done?.redacted).toMatchObject({ email: 1 });

    const exchanges = proxy.observed("POST", "/v1/sealed");
    expect(exchanges.map((e) => e.status)).toEqual([200, 200]);
    // "What the host can see": the frame that ends an answer has one size, whether it is the final
    // frame of an answer or the error frame of a blocked prompt (so it does not show which).
    const terminal = exchanges.map((e) => {
      const frames = splitFrames(e.hostResponse ?? new Uint8Array());
      return frames[frames.length - 1]?.length;
    });
    expect(terminal[0]).toBeGreaterThan(0);
    expect(terminal[1]).toBe(terminal[0]);

    await deployment.waitForLog(() => sealedLines() >= linesBefore + 2);
    const auditFiles = await hostAuditFiles(
      deployment.hostAccessLog().filter((r) => r.path === "/v1/sealed" && r.status === 200).length,
    );
    // The redacted prompt's answer is the asker's too: whole, and each frame's text of 3 bytes or more,
    // with each word of the prompt (as the test above searches them).
    const chunks = answered.events.flatMap((e) => (e.type === "text" ? [e.text] : []));
    expect(chunks.length).toBeGreaterThan(3);
    const pieces = [
      ...chunks.filter((c) => Buffer.byteLength(c) >= 3),
      ...redacted.split(/\s+/).filter((w) => w.length >= 4),
    ];
    const secrets = [blockedMarker, blocked, address, redacted, "gibberishzq", `quokka.${tag}`, answered.text];
    const needles = [...secrets.flatMap(encodings), ...pieces];
    const haystacks = [
      ...exchanges.flatMap((e) => [e.hostBody, e.hostResponse ?? new Uint8Array()]).map((b) => Buffer.from(b)),
    ].flatMap((b) => [b.toString("latin1"), b.toString("utf8")]);
    for (const haystack of [...haystacks, deployment.logs.join("\n"), ...auditFiles]) {
      expect(needles.filter((needle) => haystack.includes(needle))).toEqual([]);
    }
  });

  it("both processes are still running", async () => {
    expect(await deployment.crashed()).toBeNull();
  });
});

/** The contents of every file in the host's audit directory, once they hold `records` records in all. */
async function hostAuditFiles(records: number): Promise<string[]> {
  const dir = join(deployment.dir, "audit");
  for (let attempt = 0; ; attempt++) {
    const names = await readdir(dir).catch(() => [] as string[]);
    const contents = await Promise.all(names.map((n) => readFile(join(dir, n), "latin1")));
    const lines = names
      .filter((n) => n.endsWith(".jsonl"))
      .reduce((sum, n) => sum + (contents[names.indexOf(n)] ?? "").split("\n").filter((l) => l !== "").length, 0);
    if (lines >= records) return contents;
    if (attempt === 100) throw new Error(`host audit directory: expected ${records} records, found ${lines}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The secret as UTF-8 text, lower and upper hex, base64 and base64url (with and without padding). */
function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret, "utf8");
  return [
    secret,
    bytes.toString("hex"),
    bytes.toString("hex").toUpperCase(),
    bytes.toString("base64"),
    bytes.toString("base64").replace(/=+$/, ""),
    bytes.toString("base64url"),
  ];
}
