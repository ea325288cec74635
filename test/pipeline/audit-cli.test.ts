import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nacl from "tweetnacl";
import { afterAll, describe, expect, it } from "vitest";
import { auditFindCommand, auditVerifyCommand, verifyAuditLogFile } from "../../enclave/audit-cli-impl.ts";
import { CLI, runCloister } from "../helpers/cli.ts";
import { fifoWriter } from "../helpers/pipes.ts";
import { ATTESTATION_DIGEST, makeWriter, seededKeyPair, writeLog } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "cloister-audit-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cloister = (...args: string[]) => runCloister(args, { cwd: dir, timeoutMs: 30_000 });

const KEYS = seededKeyPair(7);
const KEY_HEX = Buffer.from(KEYS.publicKey).toString("hex");
const b64u = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");

/** An attestation-document-shaped compact JWS: payload sig_jwk = `key`, signed by `signer`. */
function documentJws(key: Uint8Array, signer: Uint8Array): string {
  const header = b64u(JSON.stringify({ alg: "EdDSA", typ: "cloister-attestation+jwt" }));
  const payload = b64u(
    JSON.stringify({ iss: "cloister-enclave", sig_jwk: { kty: "OKP", crv: "Ed25519", x: b64u(key) } }),
  );
  const sig = nacl.sign.detached(new TextEncoder().encode(`${header}.${payload}`), signer);
  return `${header}.${payload}.${b64u(sig)}`;
}

const p = (name: string) => join(dir, name);
const writer = makeWriter();
const lines = writeLog(6, writer);
writeFileSync(p("good.jsonl"), `${lines.join("\n")}\n`);
writeFileSync(p("removed.jsonl"), `${[...lines.slice(0, 2), ...lines.slice(3)].join("\n")}\n`);
writeFileSync(p("truncated.jsonl"), `${lines.slice(0, 4).join("\n")}\n`);
writeFileSync(p("checkpoint.json"), `${writer.checkpoint()}\n`);
writeFileSync(p("doc.jws"), documentJws(KEYS.publicKey, KEYS.secretKey));
writeFileSync(p("forged-doc.jws"), documentJws(KEYS.publicKey, seededKeyPair(8).secretKey));

describe("cloister audit verify (CLI)", () => {
  it("valid logs exit 0; failures exit 1 naming the code and line; usage errors exit 2", async () => {
    // Independent spawns run side by side.
    const [good, goodJson, doc, forgedDoc, removed, removedJson, truncated, withCheckpoint, both, badHex, otherKey] =
      await Promise.all([
        cloister("audit", "verify", "--log", p("good.jsonl"), "--key", KEY_HEX),
        cloister("audit", "verify", "--log", p("good.jsonl"), "--key", KEY_HEX, "--json"),
        cloister("audit", "verify", "--log", p("good.jsonl"), "--document", p("doc.jws")),
        cloister("audit", "verify", "--log", p("good.jsonl"), "--document", p("forged-doc.jws")),
        cloister("audit", "verify", "--log", p("removed.jsonl"), "--key", KEY_HEX),
        cloister("audit", "verify", "--log", p("removed.jsonl"), "--key", KEY_HEX, "--json"),
        cloister(
          "audit",
          "verify",
          "--log",
          p("truncated.jsonl"),
          "--key",
          KEY_HEX,
          "--checkpoint",
          p("checkpoint.json"),
        ),
        cloister("audit", "verify", "--log", p("good.jsonl"), "--key", KEY_HEX, "--checkpoint", p("checkpoint.json")),
        cloister("audit", "verify", "--log", p("good.jsonl"), "--key", KEY_HEX, "--document", p("doc.jws")),
        cloister("audit", "verify", "--log", p("good.jsonl"), "--key", "abc"),
        cloister(
          "audit",
          "verify",
          "--log",
          p("good.jsonl"),
          "--key",
          Buffer.from(seededKeyPair(8).publicKey).toString("hex"),
        ),
      ]);

    // Without --checkpoint: valid, and a note that a cut end is not detected (audit-cli-options.test.ts).
    expect(good).toMatchObject({ code: 0, stderr: expect.stringMatching(/^note: records cut from the end/) });
    expect(good.stdout).toMatch(/^audit log valid: 6 records, last record hash [0-9a-f]{64}\n$/);

    expect(goodJson.code).toBe(0);
    expect(JSON.parse(goodJson.stdout)).toMatchObject({
      valid: true,
      lines: 6,
      verifiedRecords: 6,
      publicKey: KEY_HEX,
      keySource: "key",
      error: null,
    });

    expect(doc.code).toBe(0);
    expect(doc.stdout).toMatch(/^audit log valid: 6 records/);
    expect(doc.stderr).toContain("hardware evidence was not verified here");

    expect(forgedDoc.code).toBe(1);
    expect(forgedDoc.stderr).toMatch(/^cloister: AUDIT_DOCUMENT_INVALID: .*does not verify under its own sig_jwk\n$/);

    expect(removed.code).toBe(1);
    expect(removed.stdout).toBe("audit log INVALID: 2 of 5 records verified before the failure\n");
    expect(removed.stderr).toMatch(/^cloister: AUDIT_RECORD_REMOVED: audit log line 3: expected seq 2, found 3/);

    expect(removedJson.code).toBe(1);
    expect(JSON.parse(removedJson.stdout)).toMatchObject({
      valid: false,
      verifiedRecords: 2,
      error: { code: "AUDIT_RECORD_REMOVED", index: 2 },
    });

    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toMatch(
      /^cloister: AUDIT_LOG_TRUNCATED: audit log end \(after line 4\): expected 6 records/,
    );
    expect(withCheckpoint.code).toBe(0);

    expect(both.code).toBe(2);
    expect(both.stderr).toContain("exactly one of --key <hex> or --document <file>");
    expect(badHex.code).toBe(2);
    expect(badHex.stderr).toContain("expected 64 hex characters");

    expect(otherKey.code).toBe(1);
    expect(otherKey.stderr).toMatch(/^cloister: AUDIT_SIGNATURE_INVALID: audit log line 1:/);
  });
});

describe("cloister audit: messages say what was found", () => {
  it("a checkpoint signed by another key, or malformed, says which", async () => {
    const otherWriter = makeWriter(seededKeyPair(8));
    writeFileSync(p("other-checkpoint.json"), `${otherWriter.checkpoint()}\n`);
    writeFileSync(p("garbage-checkpoint.json"), "{}\n");
    const verify = (checkpoint: string) =>
      auditVerifyCommand({ log: p("good.jsonl"), key: KEY_HEX, checkpoint, json: false });
    await expect(verify(p("other-checkpoint.json"))).rejects.toMatchObject({
      code: "AUDIT_CHECKPOINT_INVALID",
      problem: "signature",
      message: `checkpoint ${p("other-checkpoint.json")}: expected a checkpoint signed by the enclave key, found a signature that does not verify under it (signed by another key, or altered)`,
    });
    await expect(verify(p("garbage-checkpoint.json"))).rejects.toMatchObject({
      problem: "malformed",
      message: `checkpoint ${p("garbage-checkpoint.json")}: expected the keys checkpoint, sig, found no keys`,
    });
  });

  it("another boot's key names the boots: --document's as AUDIT_LOG_OTHER_BOOT, --key's log boot as a hint", async () => {
    const other = seededKeyPair(8);
    const otherDocument = documentJws(other.publicKey, other.secretKey);
    writeFileSync(p("other-doc.jws"), `${otherDocument}\n`);
    const otherBoot = createHash("sha256").update(otherDocument).digest("hex").slice(0, 16);
    const logBoot = ATTESTATION_DIGEST.slice(0, 16);
    const verify = (key: { key: string } | { document: string }) =>
      auditVerifyCommand({ log: p("good.jsonl"), ...key, json: false });
    await expect(verify({ document: p("other-doc.jws") })).rejects.toMatchObject({
      code: "AUDIT_LOG_OTHER_BOOT",
      message: `this log is of enclave boot ${logBoot}, --document is of boot ${otherBoot}: its log is ${otherBoot}.jsonl in the host's audit directory`,
    });
    await expect(verify({ key: Buffer.from(other.publicKey).toString("hex") })).rejects.toMatchObject({
      code: "AUDIT_SIGNATURE_INVALID",
      message: expect.stringMatching(
        new RegExp(
          `^audit log line 1: signature does not verify under the enclave key.*; this log's records name enclave boot ${logBoot} \\(unverified\\): is --key the signing key of that boot's attestation`,
        ),
      ),
    });
    // A signature that fails further on is not about the boot: no hint.
    const lines = writeLog(3, makeWriter());
    const sig = JSON.parse(lines[1] as string).sig as string;
    const flipped = `${sig.slice(0, -2)}${sig.endsWith("00") ? "11" : "00"}`;
    writeFileSync(
      p("bad-second.jsonl"),
      `${[lines[0], (lines[1] as string).replace(sig, flipped), lines[2]].join("\n")}\n`,
    );
    const second = await auditVerifyCommand({ log: p("bad-second.jsonl"), key: KEY_HEX, json: false }).catch(
      (e: Error) => e,
    );
    expect(second).toMatchObject({ code: "AUDIT_SIGNATURE_INVALID" });
    expect((second as Error).message).not.toContain("boot");
  });

  it("a --log that is a device or a directory is refused at once, naming what it is (/dev/null would verify as empty)", async () => {
    mkdirSync(p("log-dir"));
    for (const [log, found] of [
      [p("log-dir"), "a directory"],
      ["/dev/zero", "a character device"],
      ["/dev/null", "a character device"],
    ] as const) {
      await expect(auditVerifyCommand({ log, key: KEY_HEX, json: false })).rejects.toThrow(
        `--log ${log}: expected a regular file or a pipe, found ${found}`,
      );
      await expect(auditFindCommand({ log, key: KEY_HEX, requestIdHash: "0".repeat(64), json: false })).rejects.toThrow(
        `--log ${log}: expected a regular file or a pipe, found ${found}`,
      );
    }
    // A link is followed: what is verified is the content, signed by the enclave, wherever it is.
    symlinkSync(p("good.jsonl"), p("linked.jsonl"));
    await expect(verifyAuditLogFile(p("linked.jsonl"), KEYS.publicKey)).resolves.toMatchObject({
      ok: true,
      records: 6,
    });
  });

  it("an error of the verifier's own (here its onRecord's) is thrown as it is, not called a --log that cannot be read", async () => {
    const failure = new Error("a stand-in for a verifier's bug");
    const thrown = await verifyAuditLogFile(p("good.jsonl"), KEYS.publicKey, {}, () => {
      throw failure;
    }).catch((error: unknown) => error);
    expect(thrown).toBe(failure);
  });

  it("a --log that is a pipe is read as the file is: a named pipe, <(command), /dev/stdin", async () => {
    const log = `${lines.join("\n")}\n`;
    const writer = fifoWriter(p("log.fifo"), log);
    try {
      await expect(verifyAuditLogFile(p("log.fifo"), KEYS.publicKey)).resolves.toMatchObject({ ok: true, records: 6 });
    } finally {
      writer.stop();
    }
    // `audit find` reads it the same way: every record of the log read (none has this hash).
    const findWriter = fifoWriter(p("find.fifo"), log);
    try {
      await expect(
        auditFindCommand({ log: p("find.fifo"), key: KEY_HEX, requestIdHash: "0".repeat(64), json: false }),
      ).rejects.toThrow("among the 6 records of this log");
    } finally {
      findWriter.stop();
    }
    // From a shell, as a user runs it: a process substitution, and a pipe on standard input (Node's
    // own child processes get a socket there, which is refused: /dev/stdin cannot open one).
    const shell = (command: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          "bash",
          ["-c", command, process.execPath, CLI],
          { cwd: dir, timeout: 30_000 },
          (error, stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr }),
        );
      });
    const [substituted, stdin, removed] = await Promise.all([
      shell(`exec "$0" "$1" audit verify --log <(cat good.jsonl) --key ${KEY_HEX}`),
      shell(`cat good.jsonl | "$0" "$1" audit verify --log /dev/stdin --key ${KEY_HEX}`),
      shell(`cat removed.jsonl | "$0" "$1" audit verify --log /dev/stdin --key ${KEY_HEX}`),
    ]);
    expect(substituted).toMatchObject({ code: 0, stdout: expect.stringMatching(/^audit log valid: 6 records/) });
    expect(stdin).toMatchObject({ code: 0, stdout: expect.stringMatching(/^audit log valid: 6 records/) });
    expect(removed).toMatchObject({
      code: 1,
      stdout: "audit log INVALID: 2 of 5 records verified before the failure\n",
    });
    const socket = await runCloister(["audit", "verify", "--log", "/dev/stdin", "--key", KEY_HEX], {
      cwd: dir,
      input: log,
    });
    expect([socket.code, socket.stderr]).toEqual([
      2,
      "cloister: USAGE: --log /dev/stdin: expected a regular file or a pipe, found a socket\n",
    ]);
  });

  it("a bad request id hash or opening: its length, never the opening's digits", async () => {
    await expect(
      auditFindCommand({ log: p("good.jsonl"), key: KEY_HEX, requestIdHash: "ABC", json: false }),
    ).rejects.toThrow(
      "--request-id-hash expects 64 lower-case hex digits, found 3 characters (not all lower-case hex) (run with --help for usage)",
    );
    const secretLooking = "f00d".repeat(15);
    writeFileSync(p("opening.txt"), `${secretLooking}\n`);
    const find = auditFindCommand({
      log: p("good.jsonl"),
      key: KEY_HEX,
      requestIdHash: "0".repeat(64),
      openingFile: p("opening.txt"),
      json: false,
    });
    await expect(find).rejects.toThrow(
      `--opening-file ${p("opening.txt")}: expected 64 lower-case hex digits, found 60 characters`,
    );
    await find.catch((error: Error) => expect(error.message).not.toContain(secretLooking));
  });
});
