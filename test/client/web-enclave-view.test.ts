/**
 * The page's view of the verified enclave (client/web/enclave-view.ts), with minimal stand-ins for
 * the DOM: the SIMULATED notice follows the enclave verified last, both ways.
 */
import { readFile } from "node:fs/promises";
import { afterEach, expect, it } from "vitest";
import type { VerifiedEnclave } from "../../attestation/document.ts";
import { ClientError } from "../../client/errors.ts";
import {
  type EnclaveViewElements,
  failureHint,
  questionToSend,
  showEnclave,
  showMaxTokensNote,
  showRedactionNote,
} from "../../client/web/enclave-view.ts";
import { createWebApp } from "../../client/web/server.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { closeServers, connectTo, devPolicy } from "./helpers.ts";

afterEach(closeServers);

type FakeCell = { textContent: string | null };

function fakeElements() {
  const rows: FakeCell[][] = [];
  const cell = (): FakeCell => ({ textContent: null });
  const table = {
    hidden: true,
    replaceChildren: () => {
      rows.length = 0;
    },
    insertRow: () => {
      const row: FakeCell[] = [];
      rows.push(row);
      return {
        append: (th: FakeCell) => row.push(th),
        insertCell: () => {
          const c = cell();
          row.push(c);
          return c;
        },
      };
    },
  };
  const simulatedNotice = { hidden: true };
  const elements = { table, simulatedNotice, createHeaderCell: cell } as unknown as EnclaveViewElements;
  return { elements, rows, table, simulatedNotice };
}

it("shows the SIMULATED notice for a simulated enclave and hides it again after a real-hardware verification", async () => {
  const { session } = await connectTo();
  const simulated = session.enclave;
  expect(simulated.simulated).toBe(true);
  // The same facts as verified on real hardware (only what the view reads differs).
  const hardware = { ...simulated, simulated: false, tee: "sev-snp" } as VerifiedEnclave;
  const { elements, rows, table, simulatedNotice } = fakeElements();

  showEnclave(simulated, elements);
  expect(table.hidden).toBe(false);
  expect(simulatedNotice.hidden).toBe(false);
  expect(rows[0]?.map((c) => c.textContent)).toEqual(["TEE", "sev-snp (SIMULATED: insecure simulator root)"]);

  showEnclave(hardware, elements);
  expect(simulatedNotice.hidden).toBe(true);
  expect(rows[0]?.map((c) => c.textContent)).toEqual(["TEE", "sev-snp"]);
  expect(rows).toHaveLength(13);

  showEnclave(simulated, elements);
  expect(simulatedNotice.hidden).toBe(false);
});

it("shows the verified manifest's rules, PII handling and audit setting, as the CLI's attest does", async () => {
  // Signed into the manifest the enclave attests; the client sees them only through verification.
  const { session } = await connectTo({
    overrides: {
      requestPolicy: {
        defaultAction: "block",
        rules: [{ id: "short-prompts", kind: "maxPromptTokens", action: "allow", limit: 300 }],
        pii: { mode: "block", entities: ["iban"], reason: null },
      },
      audit: { enabled: true, reason: null, recordPromptHash: false, recordResponseHash: true },
    },
  });
  const { elements, rows } = fakeElements();
  showEnclave(session.enclave, elements);
  const shown = Object.fromEntries(rows.map((row) => row.map((c) => c.textContent)));
  expect(shown).toMatchObject({
    rules: "block by default; the first rule that matches decides: allow short-prompts (maxPromptTokens over 300)",
    PII: "block: iban",
    audit: "on (prompt hash not recorded, answer hash recorded)",
  });
});

it("shows the verified manifest's tee constraints for a sim-snp and a sim-tdx enclave, as the CLI's attest does", async () => {
  const reason = DEV_MANIFEST.tee.allowedMeasurements;
  expect(Array.isArray(reason)).toBe(false);
  for (const [tee, field, minimum, flags] of [
    [
      "sim-snp",
      "MEASUREMENT",
      "manifest requires SNP bootloader 0, TEE 0, SNP 0, microcode 0 or above (of the reported, launch and committed TCB each)",
      "manifest: debug not allowed, migration agent not allowed, SMT allowed",
    ],
    [
      "sim-tdx",
      "MRTD",
      `manifest requires TDX TEE_TCB_SVN ${"00".repeat(16)}, PCE SVN 0, QE SVN 0 or above`,
      "manifest: debug not allowed, migratable TD not allowed, SMT not reported by TDX (a TDX manifest must allow it)",
    ],
  ] as const) {
    const { session } = await connectTo({ tee, connect: { policy: await devPolicy(tee) } });
    const { elements, rows } = fakeElements();
    showEnclave(session.enclave, elements);
    const shown = Object.fromEntries(rows.map((row) => row.map((c) => c.textContent)));
    expect(shown).toMatchObject({
      measurements: `manifest allows any ${field} (reason: ${(reason as { reason: string }).reason})`,
      "minimum TCB": minimum,
      "TEE flags": flags,
    });
  }
});

it("notes --max-tokens over the manifest's inference.maxTokens, following the enclave verified last", async () => {
  const { session } = await connectTo();
  const allowing = (maxTokens: number) =>
    ({
      ...session.enclave,
      manifest: { ...session.enclave.manifest, manifest: { inference: { maxTokens } } },
    }) as VerifiedEnclave;
  const note = { hidden: true, textContent: "" };

  showMaxTokensNote(300, allowing(256), note);
  expect(note).toEqual({
    hidden: false,
    textContent:
      "--max-tokens 300: the enclave's manifest allows at most 256 tokens an answer (inference.maxTokens): answers stop there",
  });
  showMaxTokensNote(300, allowing(64), note);
  expect(note.textContent).toContain("at most 64 tokens");
  // Within the limit of the enclave verified now, or none verified: hidden again.
  showMaxTokensNote(300, allowing(300), note);
  expect(note).toEqual({ hidden: true, textContent: "" });
  showMaxTokensNote(300, allowing(64), note);
  showMaxTokensNote(300, null, note);
  expect(note).toEqual({ hidden: true, textContent: "" });
});

it("the page has the note's element, hidden until the page fills it", async () => {
  const app = createWebApp({ hostUrl: "https://host.example", policy: {}, maxTokens: 64, script: "" });
  const html = await (await app.request("http://127.0.0.1/", { headers: { host: "127.0.0.1" } })).text();
  expect(html).toMatch(/<p id="max-tokens-note" role="note" hidden><\/p>/);
});

it("shows under an answer that the enclave redacted PII from its prompt, as chat says it, and hides it again", async () => {
  const { session } = await connectTo();
  const note = { hidden: true, textContent: "" };
  showRedactionNote({ email: 1, ip_address: 2 }, session.enclave, note);
  expect(note).toEqual({
    hidden: false,
    textContent:
      'the enclave redacted 1 email address and 2 IP addresses from your prompt before the model saw it (manifest PII mode "redact")',
  });
  // The next answer's prompt had none (or a question is under way): hidden again.
  showRedactionNote(null, session.enclave, note);
  expect(note).toEqual({ hidden: true, textContent: "" });
  // An enclave that did not say (built before it did), under a manifest that redacts: said not to
  // say, never hidden as if nothing was redacted; under one that does not redact, nothing to say.
  showRedactionNote(undefined, session.enclave, note);
  expect(note).toEqual({
    hidden: false,
    textContent:
      'the enclave does not say whether it redacted PII from your prompt before the model saw it (manifest PII mode "redact"; an enclave built before it said so)',
  });
  const blocking = {
    ...session.enclave,
    manifest: {
      ...session.enclave.manifest,
      manifest: {
        ...(session.enclave.manifest.manifest as object),
        requestPolicy: { defaultAction: "allow", rules: [], pii: { mode: "block", entities: ["email"], reason: null } },
      },
    },
  } as VerifiedEnclave;
  showRedactionNote(undefined, blocking, note);
  expect(note).toEqual({ hidden: true, textContent: "" });
});

it("the page has the redaction note's element under the answer, hidden until an answer fills it", async () => {
  const app = createWebApp({ hostUrl: "https://host.example", policy: {}, maxTokens: 64, script: "" });
  const html = await (await app.request("http://127.0.0.1/", { headers: { host: "127.0.0.1" } })).text();
  expect(html).toMatch(/<p id="usage"><\/p>\n<p id="redaction-note" role="note" hidden><\/p>/);
});

it("says what to do when the policy does not trust the simulator the host's enclave runs on", async () => {
  // The code connect() gives for a simulated enclave under a policy that does not trust it.
  const policy = await devPolicy();
  const strict = { ...policy, attestation: { ...policy.attestation, trustSimulator: false } };
  const failure = await connectTo({ connect: { policy: strict } }).then(
    () => null,
    (error: unknown) => error,
  );
  expect(failure).toBeInstanceOf(ClientError);
  const code = (failure as ClientError).code;
  expect(code).toBe("SIMULATED_EVIDENCE_NOT_TRUSTED");
  // The error line the page shows says what to do (as the CLI and the SDK say it), so no hint repeats it.
  const message = (failure as ClientError).message;
  expect(message).toContain("this enclave runs on the simulator: use a policy that trusts it for local development");
  expect(message).toContain("(`cloister up` writes one: .cloister/policy.json)");
  expect(message).toContain("or a deployment on SEV-SNP or TDX hardware");
  expect(failureHint(code, "http://127.0.0.1:8788", "verify")).toBeNull();
});

it("says what to do when the host cannot be reached: its --cors-origin, and while asking, that the question is kept", () => {
  expect(failureHint("HOST_UNREACHABLE", "http://127.0.0.1:47788", "verify")).toBe(
    "If the host is running, it may not allow this page's origin: start it with --cors-origin http://127.0.0.1:47788.",
  );
  const asking = failureHint("HOST_UNREACHABLE", "http://127.0.0.1:47788", "answer");
  expect(asking).toContain("Is the host still running (cloister up or cloister host)? Your question stays in the box");
  expect(asking).toContain("--cors-origin http://127.0.0.1:47788");
  // An error that says what to do itself gets nothing more.
  expect(failureHint("POLICY_BLOCKED", "http://127.0.0.1:47788", "answer")).toBeNull();
  expect(failureHint("SNP_MEASUREMENT_NOT_ALLOWED", "http://127.0.0.1:47788", "verify")).toBeNull();
});

it("sends the question exactly as typed, as `cloister chat` sends a file, and nothing for an empty or blank one", async () => {
  // Whitespace is part of the question (an indented first line of code), as in a file `cloister chat` sends.
  expect(questionToSend("  Why quokkas?\n")).toBe("  Why quokkas?\n");
  expect(questionToSend("Why quokkas?")).toBe("Why quokkas?");
  expect(questionToSend("")).toBeNull();
  expect(questionToSend(" \n\t ")).toBeNull();
  // The page sends what questionToSend gives for the prompt box's text, not a text of its own.
  const page = await readFile(new URL("../../client/web/page.ts", import.meta.url), "utf8");
  expect(page).toContain("const question = questionToSend(prompt.value);");
  expect(page).not.toMatch(/prompt\.value\.trim\(\)/);
});
