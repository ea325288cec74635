import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { fromHex } from "../../attestation/bytes.ts";
import { EvidenceError } from "../../attestation/errors.ts";
import {
  AZURE_AK_HANDLE,
  AZURE_PCR_SELECTION,
  AzureVtpmProvider,
  fetchImds,
} from "../../attestation/providers/azure-vtpm.ts";
import type { CommandRunner } from "../../attestation/providers/command-runner.ts";
import { nodeTsmFileSystem, requestTsmReport, type TsmFileSystem } from "../../attestation/providers/configfs-tsm.ts";
import { detectTee } from "../../attestation/providers/detect.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { rejection } from "../helpers/attestation.ts";
import { watchTimeouts } from "../helpers/held-timers.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { fakeSnpReport, TsmEmulator } from "./tsm-emulator.ts";

const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);
const text = (p: string) => readFileSync(new URL(p, FIXTURES), "utf8");

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), "cloister-vtpm-test-"));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** TPM2B_DATA's limit on a TPM whose largest digest is SHA-384 (Azure's vTPM): 2 + 48 bytes. */
const TPM_MAX_QUALIFYING_DATA = 50;

/** What tpm2_quote says when the TPM refuses the qualifying data's size (TPM_RC_SIZE, parameter 1). */
const TPM_RC_SIZE = {
  exitCode: 1,
  stdout: new Uint8Array(0),
  stderr:
    "WARNING:esys:src/tss2-esys/api/Esys_Quote.c:317:Esys_Quote_Finish() Received TPM Error\nERROR:esys:src/tss2-esys/api/Esys_Quote.c:105:Esys_Quote() Esys Finish ErrorCode (0x000001d5)\nERROR: Esys_Quote(0x1D5) - tpm:parameter(1):structure is the wrong size\n",
};

/** What tpm2_quote says when the PCRs it read after the quote do not give the quote's PCR digest (tpm2-tools log format). */
const PCR_RACE = {
  exitCode: 1,
  stdout: new Uint8Array(0),
  stderr:
    'ERROR on line: "257" in file: "tools/tpm2_quote.c": Error validating calculated PCR composite with quote\nERROR: Unable to run tpm2_quote\n',
};

/** A fake tpm2-tools runner that writes the captured fixture bytes where the real tools would. */
function fakeTpm(
  fixture: string,
  options: {
    failing?: string;
    nvDefined?: boolean;
    /** The size tpm2_nvreadpublic reports for a defined 0x01400002 (default 64). */
    nvSize?: number;
    /** The first reads of 0x01400001 return this fixture's (stale) HCL report. */
    stale?: { fixture: string; reads: number };
    /** The first runs of tpm2_quote find a PCR changed after the quote (tpm2-tools' check fails). */
    pcrRaces?: number;
  } = {},
) {
  let pcrRaces = options.pcrRaces ?? 0;
  const evidence = parseAzureEvidence(text(fixture));
  let staleReads = options.stale?.reads ?? 0;
  const stale = options.stale === undefined ? null : parseAzureEvidence(text(options.stale.fixture)).hclReport;
  const calls: { command: string; args: readonly string[] }[] = [];
  const run: CommandRunner = async (command, args) => {
    calls.push({ command, args });
    const ok = { exitCode: 0, stdout: new Uint8Array(0), stderr: "" };
    if (command === options.failing)
      return {
        exitCode: 1,
        stdout: new Uint8Array(0),
        stderr:
          "WARNING:esys:src/tss2-esys/api/Esys_Quote.c:317:Esys_Quote_Finish() Received TPM Error\nERROR:esys:src/tss2-esys/api/Esys_Quote.c:105:Esys_Quote() Esys Finish ErrorCode (0x00000184)\nERROR: Esys_Quote(0x184) - tpm:error(2.0): value is out of range\nERROR: Unable to run tpm2_quote\n",
      };
    const arg = (flag: string) => args[args.indexOf(flag) + 1] as string;
    switch (command) {
      case "tpm2_nvreadpublic":
        if (options.nvDefined === false) return { ...ok, exitCode: 1 };
        // tpm2-tools' YAML for one index (tpm2_nvreadpublic.c)
        return {
          ...ok,
          stdout: new TextEncoder().encode(
            `${args[0]?.replace("0x0", "0x")}:\n  name: 000b00\n  hash algorithm:\n    friendly: sha256\n    value: 0xB\n  attributes:\n    friendly: ownerwrite|ownerread\n    value: 0x2000200\n  size: ${options.nvSize ?? 64}\n\n`,
          ),
        };
      case "tpm2_nvundefine":
      case "tpm2_nvdefine":
      case "tpm2_nvwrite":
        return ok;
      case "tpm2_nvread":
        await fs.writeFile(arg("-o"), stale !== null && staleReads-- > 0 ? stale : evidence.hclReport);
        return ok;
      case "tpm2_quote": {
        // A TPM takes at most 2 + its largest digest (50 bytes on a SHA-384 TPM) as qualifying data.
        if (arg("-q").length / 2 > TPM_MAX_QUALIFYING_DATA) return TPM_RC_SIZE;
        if (pcrRaces-- > 0) return PCR_RACE;
        await fs.writeFile(arg("-m"), evidence.tpmQuote.message);
        await fs.writeFile(arg("-s"), evidence.tpmQuote.signature);
        const pcrs = new Uint8Array(24 * 32);
        evidence.tpmQuote.pcrs.forEach((p, i) => {
          pcrs.set(p, i * 32);
        });
        await fs.writeFile(arg("-o"), pcrs);
        return ok;
      }
      default:
        return { exitCode: 127, stdout: new Uint8Array(0), stderr: "unexpected command" };
    }
  };
  return { run, calls, evidence };
}

/** milan-v2's HCL user-data: the 48-byte verifier nonce followed by 16 zero bytes. */
const MILAN_V2_USER_DATA = fromHex(
  `${"982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef"}${"00".repeat(16)}`,
);

const noImds = {
  getVcek: async () => {
    throw new Error("unexpected IMDS call");
  },
  getTdQuote: async () => {
    throw new Error("unexpected IMDS call");
  },
};

describe("Azure vTPM provider (fake tpm2-tools, fixture bytes)", () => {
  it("writes REPORT_DATA to user-data, reads the HCL report, quotes with the AK and emits verifiable v2 evidence", async () => {
    // milan-v2's HCL user-data is the 48-byte verifier nonce followed by 16 zero bytes.
    const fixture = "azure/snp-vtpm/milan-evidence-v2.trustee.json";
    const { run, calls, evidence } = fakeTpm(fixture, { nvDefined: false });
    const reportData = MILAN_V2_USER_DATA;
    const vcek = evidence.vcek as Uint8Array;
    const provider = new AzureVtpmProvider({
      kind: "azure-snp",
      run,
      imds: { ...noImds, getVcek: async () => vcek },
      tempDir: dir,
    });
    const raw = await provider.getEvidence(reportData);
    expect(raw.kind).toBe("azure-snp");
    expect(calls.map((c) => c.command)).toEqual([
      "tpm2_nvreadpublic",
      "tpm2_nvdefine",
      "tpm2_nvwrite",
      "tpm2_nvread",
      "tpm2_quote",
    ]);
    const quote = calls[4]?.args ?? [];
    expect(quote.slice(0, 4)).toEqual(["-c", AZURE_AK_HANDLE, "-l", AZURE_PCR_SELECTION]);
    // Qualifying data SHA-256(REPORT_DATA): 32 bytes, which every TPM 2.0 takes.
    expect(quote[quote.indexOf("-q") + 1]).toBe(createHash("sha256").update(reportData).digest("hex"));
    expect(calls[3]?.args).toContain("0x01400001");
    const parsed = parseAzureEvidence(raw.json);
    expect(parsed.format).toBe("v2");
    const verified = await verifyAzureEvidence({
      evidence: parsed,
      at: new Date("2026-01-01T00:00:00Z"),
      expectedNonce: reportData.subarray(0, 48), // the captured quote was made with the 48-byte nonce
      snpAnchors: AMD_ROOTS,
    });
    expect(verified.runtimeData.vmUniqueId).toBe("7DF7B373-B947-4AAA-96E5-C358F2A03D20");
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("quotes with qualifying data SHA-256(REPORT_DATA), never the 64 bytes a TPM refuses (at most 50)", async () => {
    for (const kind of ["azure-snp", "azure-tdx"] as const) {
      const fixture =
        kind === "azure-snp"
          ? "azure/snp-vtpm/genoa-evidence.trustee.json"
          : "azure/tdx-vtpm/tdx-evidence-v1.trustee.json";
      const { run, calls, evidence } = fakeTpm(fixture);
      const imds = {
        getVcek: async () => evidence.vcek as Uint8Array,
        getTdQuote: async () => evidence.tdQuote as Uint8Array,
      };
      const provider = new AzureVtpmProvider({ kind, run, imds, refreshUserData: false, tempDir: dir });
      for (const reportData of [new Uint8Array(64).fill(0xff), Uint8Array.from({ length: 64 }, (_, i) => i)]) {
        await provider.getEvidence(reportData);
        const quote = calls.findLast((c) => c.command === "tpm2_quote")?.args ?? [];
        const qualifying = fromHex(quote[quote.indexOf("-q") + 1] as string);
        expect(qualifying).toEqual(new Uint8Array(createHash("sha256").update(reportData).digest()));
        expect(qualifying.length).toBeLessThanOrEqual(TPM_MAX_QUALIFYING_DATA);
      }
    }
  });

  it("emits verifiable v1 TDX evidence using the IMDS quote for the TDREPORT", async () => {
    const fixture = "azure/tdx-vtpm/tdx-evidence-v1.trustee.json";
    const { run, evidence } = fakeTpm(fixture);
    let seenReport: Uint8Array | undefined;
    const provider = new AzureVtpmProvider({
      kind: "azure-tdx",
      run,
      refreshUserData: false,
      imds: {
        ...noImds,
        getTdQuote: async (tdReport) => {
          seenReport = tdReport;
          return evidence.tdQuote as Uint8Array;
        },
      },
      tempDir: dir,
    });
    const raw = await provider.getEvidence(new Uint8Array(64));
    expect(seenReport).toEqual(evidence.hclReport.slice(0x20, 0x20 + 1024));
    const verified = await verifyAzureEvidence({
      evidence: parseAzureEvidence(raw.json),
      at: new Date("2024-01-01T00:00:00Z"),
      expectedNonce: new TextEncoder().encode("challenge"),
      tdxAnchors: INTEL_ROOTS,
    });
    expect(verified.kind).toBe("azure-tdx");
  });

  it("refuses an HCL report still stale when the reads give up (AZURE_USER_DATA_NOT_REFRESHED)", async () => {
    const { run, calls } = fakeTpm("azure/snp-vtpm/genoa-evidence.trustee.json");
    const provider = new AzureVtpmProvider({
      kind: "azure-snp",
      run,
      imds: noImds,
      tempDir: dir,
      refreshTimeoutMs: 200,
      refreshIntervalMs: 50,
    });
    const error = await rejection(provider.getEvidence(new Uint8Array(64).fill(1)));
    expect(error.code).toBe("AZURE_USER_DATA_NOT_REFRESHED");
    expect(error.message).toContain("after 200 ms");
    expect(calls.filter((c) => c.command === "tpm2_nvread").length).toBeGreaterThanOrEqual(3);
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("reads the HCL report again until the paravisor has put the new user-data in it", async () => {
    const { run, calls, evidence } = fakeTpm("azure/snp-vtpm/milan-evidence-v2.trustee.json", {
      stale: { fixture: "azure/snp-vtpm/genoa-evidence.trustee.json", reads: 2 },
    });
    const provider = new AzureVtpmProvider({
      kind: "azure-snp",
      run,
      imds: { ...noImds, getVcek: async () => evidence.vcek as Uint8Array },
      tempDir: dir,
      refreshIntervalMs: 10,
    });
    const raw = await provider.getEvidence(MILAN_V2_USER_DATA);
    expect(parseAzureEvidence(raw.json).hclReport).toEqual(evidence.hclReport);
    expect(calls.filter((c) => c.command === "tpm2_nvread")).toHaveLength(3);
  });

  it("defines NV index 0x01400002 again when it has another size than 64 bytes", async () => {
    const milanV2 = (nvSize: number) => {
      const tpm = fakeTpm("azure/snp-vtpm/milan-evidence-v2.trustee.json", { nvSize });
      const imds = { ...noImds, getVcek: async () => tpm.evidence.vcek as Uint8Array };
      const provider = new AzureVtpmProvider({ kind: "azure-snp", run: tpm.run, imds, tempDir: dir });
      return { provider, calls: tpm.calls };
    };
    const { provider, calls } = milanV2(32);
    await provider.getEvidence(MILAN_V2_USER_DATA);
    expect(calls.map((c) => c.command).slice(0, 4)).toEqual([
      "tpm2_nvreadpublic",
      "tpm2_nvundefine",
      "tpm2_nvdefine",
      "tpm2_nvwrite",
    ]);
    expect(calls[1]?.args).toEqual(["-C", "o", "0x01400002"]);
    const kept = milanV2(64);
    await kept.provider.getEvidence(MILAN_V2_USER_DATA);
    expect(kept.calls.map((c) => c.command).slice(0, 2)).toEqual(["tpm2_nvreadpublic", "tpm2_nvwrite"]);
  });

  it("names the index, the expected and the found size when a wrong-size index cannot be undefined", async () => {
    const { run } = fakeTpm("azure/snp-vtpm/milan-evidence-v2.trustee.json", {
      nvSize: 32,
      failing: "tpm2_nvundefine",
    });
    const provider = new AzureVtpmProvider({ kind: "azure-snp", run, imds: noImds, tempDir: dir });
    const error = await rejection(provider.getEvidence(MILAN_V2_USER_DATA));
    expect(error.code).toBe("AZURE_USER_DATA_INDEX_SIZE");
    expect(error.message).toContain("NV index 0x01400002: expected 64 bytes, found 32");
  });

  it("reports a failing tpm2_quote with TPM_COMMAND_FAILED and the tool's error lines, not its warning", async () => {
    const { run, calls } = fakeTpm("azure/snp-vtpm/genoa-evidence.trustee.json", { failing: "tpm2_quote" });
    const provider = new AzureVtpmProvider({
      kind: "azure-snp",
      run,
      imds: noImds,
      refreshUserData: false,
      tempDir: dir,
    });
    const error = await rejection(provider.getEvidence(new Uint8Array(64)));
    expect(error.code).toBe("TPM_COMMAND_FAILED");
    expect(error.message).toContain("tpm:error(2.0): value is out of range");
    expect(error.message).not.toContain("WARNING");
    // Only a changed PCR is worth another quote.
    expect(calls.filter((c) => c.command === "tpm2_quote")).toHaveLength(1);
  });

  it("runs tpm2_quote again, after a growing pause, when a PCR changed between the quote and its PCR read", async () => {
    const quotes = (calls: readonly { command: string }[]) => calls.filter((c) => c.command === "tpm2_quote").length;
    const genoa = (pcrRaces: number, quoteAttempts?: number) => {
      const tpm = fakeTpm("azure/snp-vtpm/genoa-evidence.trustee.json", { pcrRaces });
      const imds = { ...noImds, getVcek: async () => tpm.evidence.vcek as Uint8Array };
      const provider = new AzureVtpmProvider({
        kind: "azure-snp",
        run: tpm.run,
        imds,
        refreshUserData: false,
        tempDir: dir,
        quoteRetryDelayMs: 20,
        ...(quoteAttempts === undefined ? {} : { quoteAttempts }),
      });
      return { provider, calls: tpm.calls };
    };
    // Two races, then a quote: evidence, after pauses of 20 then 40 ms, each between two quotes
    // (each pause set, with the quotes run so far when it was, and whether it fired before the next).
    const raced = genoa(2);
    const pauses: { ms: number | undefined; afterQuotes: number; fired: boolean }[] = [];
    const spy = watchTimeouts(
      (ms) => {
        const pause = { ms, afterQuotes: quotes(raced.calls), fired: false };
        pauses.push(pause);
        return pause;
      },
      (pause) => {
        pause.fired = quotes(raced.calls) === pause.afterQuotes; // before the next quote ran
      },
    );
    const raw = await raced.provider.getEvidence(new Uint8Array(64)).finally(() => spy.restore());
    expect(pauses).toEqual([
      { ms: 20, afterQuotes: 1, fired: true },
      { ms: 40, afterQuotes: 2, fired: true },
    ]);
    expect(quotes(raced.calls)).toBe(3);
    expect(parseAzureEvidence(raw.json).kind).toBe("azure-snp");
    // A race on every attempt (4 by default): TPM_COMMAND_FAILED naming it, no fifth run.
    const always = genoa(100);
    const error = await rejection(always.provider.getEvidence(new Uint8Array(64)));
    expect(error.code).toBe("TPM_COMMAND_FAILED");
    expect(error.message).toBe(
      "tpm2_quote: expected exit status 0, found 1: Error validating calculated PCR composite with quote (a PCR changed between the quote and the tool's PCR read) on each of 4 attempts",
    );
    expect(quotes(always.calls)).toBe(4);
    // quoteAttempts bounds the runs.
    const two = genoa(100, 2);
    await rejection(two.provider.getEvidence(new Uint8Array(64)));
    expect(quotes(two.calls)).toBe(2);
    // Not a count: refused before any quote (NaN would never have reached it).
    for (const bad of [Number.NaN, 0, 1.5]) {
      const wrong = genoa(100, bad);
      await expect(wrong.provider.getEvidence(new Uint8Array(64))).rejects.toThrow(
        `quoteAttempts: expected an integer of at least 1, found ${bad}`,
      );
      expect(quotes(wrong.calls)).toBe(0);
    }
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("refuses an HCL report of the other TEE (AZURE_WRONG_TEE)", async () => {
    const { run } = fakeTpm("azure/tdx-vtpm/tdx-evidence-v1.trustee.json");
    const provider = new AzureVtpmProvider({
      kind: "azure-snp",
      run,
      imds: noImds,
      refreshUserData: false,
      tempDir: dir,
    });
    expect((await rejection(provider.getEvidence(new Uint8Array(64)))).code).toBe("AZURE_WRONG_TEE");
  });
});

/**
 * What tpm2-tools 5 print on a machine with no TPM device (captured: tpm2_nvreadpublic 0x01400001,
 * tpm2-tools 5.4 and tpm2-tss 3.2 on Debian 12, no /dev/tpm*): the TCTI loader tries each device,
 * then swtpm and mssim. Its last lines, all the ERROR lines quoted name, say only "(null)".
 */
const noTpmStderr = (problem: string) =>
  [
    `ERROR:tcti:src/tss2-tcti/tcti-device.c:452:Tss2_Tcti_Device_Init() Failed to open specified TCTI device file /dev/tpmrm0: ${problem} `,
    "ERROR:tcti:src/tss2-tcti/tctildr-dl.c:154:tcti_from_file() Could not initialize TCTI file: libtss2-tcti-device.so.0 ",
    `ERROR:tcti:src/tss2-tcti/tcti-device.c:452:Tss2_Tcti_Device_Init() Failed to open specified TCTI device file /dev/tpm0: ${problem} `,
    "ERROR:tcti:src/tss2-tcti/tctildr-dl.c:154:tcti_from_file() Could not initialize TCTI file: libtss2-tcti-device.so.0 ",
    "WARNING:tcti:src/util/io.c:262:socket_connect() Failed to connect to host 127.0.0.1, port 2321: errno 111: Connection refused ",
    "ERROR:tcti:src/tss2-tcti/tcti-swtpm.c:614:Tss2_Tcti_Swtpm_Init() Cannot connect to swtpm TPM socket ",
    "ERROR:tcti:src/tss2-tcti/tctildr-dl.c:254:tctildr_get_default() No standard TCTI could be loaded ",
    "ERROR:tcti:src/tss2-tcti/tctildr.c:428:Tss2_TctiLdr_Initialize_Ex() Failed to instantiate TCTI ",
    'ERROR: Could not load tcti, got: "(null)"',
    "",
  ].join("\n");

/** tpm2_nvread of an index the TPM does not have (TPM_RC_HANDLE; tpm2-tools issue #2698's output). */
const NO_SUCH_INDEX_STDERR = [
  "WARNING:esys:src/tss2-esys/api/Esys_NV_ReadPublic.c:309:Esys_NV_ReadPublic_Finish() Received TPM Error",
  "ERROR:esys:src/tss2-esys/esys_tr.c:210:Esys_TR_FromTPMPublic_Finish() Error NV_ReadPublic ErrorCode (0x0000018b)",
  "ERROR:esys:src/tss2-esys/esys_tr.c:321:Esys_TR_FromTPMPublic() Error TR FromTPMPublic ErrorCode (0x0000018b)",
  "ERROR: Esys_TR_FromTPMPublic(0x18B) - tpm:handle(1):the handle is not correct for the use",
  "ERROR: Unable to run tpm2_nvread",
  "",
].join("\n");

describe("Azure vTPM provider on a VM that is not an Azure confidential VM", () => {
  it.each([
    ["no TPM device", "No such file or directory"],
    ["a TPM device this user may not open", "Permission denied"],
  ])("%s: names both devices, what the TSS found at each, and what the VM and the enclave need", async (_, problem) => {
    const calls: string[] = [];
    const run: CommandRunner = async (command) => {
      calls.push(command);
      return { exitCode: 1, stdout: new Uint8Array(0), stderr: noTpmStderr(problem) };
    };
    const provider = new AzureVtpmProvider({ kind: "azure-snp", run, imds: noImds, tempDir: dir });
    const error = await rejection(provider.getEvidence(new Uint8Array(64)));
    expect(error.code).toBe("TPM_COMMAND_FAILED");
    expect(error.message).toBe(
      `tpm2_nvreadpublic: expected a TPM device the tools can open (/dev/tpmrm0 or /dev/tpm0), found /dev/tpmrm0: ${problem}; /dev/tpm0: ${problem}; --tee azure-snp and azure-tdx need an Azure confidential VM (az vm create --security-type ConfidentialVM --enable-vtpm true, a DCasv5/ECasv5 size for azure-snp, DCesv6/ECesv6 for azure-tdx), and the enclave run as root or in the tss group`,
    );
    // Not taken for an absent user-data index (which would go on to tpm2_nvdefine's TCTI lines).
    expect(calls).toEqual(["tpm2_nvreadpublic"]);
  });

  it("quotes at most 300 characters of what the TSS found at the devices, as of a tool's other errors", async () => {
    const run: CommandRunner = async () => ({
      exitCode: 1,
      stdout: new Uint8Array(0),
      stderr: noTpmStderr(`No such file or directory ${"x".repeat(400)}`),
    });
    const provider = new AzureVtpmProvider({ kind: "azure-snp", run, imds: noImds, tempDir: dir });
    const error = await rejection(provider.getEvidence(new Uint8Array(64)));
    expect(error.code).toBe("TPM_COMMAND_FAILED");
    const found = `/dev/tpmrm0: No such file or directory ${"x".repeat(400)}`.slice(0, 300);
    expect(error.message).toBe(
      `tpm2_nvreadpublic: expected a TPM device the tools can open (/dev/tpmrm0 or /dev/tpm0), found ${found}; --tee azure-snp and azure-tdx need an Azure confidential VM (az vm create --security-type ConfidentialVM --enable-vtpm true, a DCasv5/ECasv5 size for azure-snp, DCesv6/ECesv6 for azure-tdx), and the enclave run as root or in the tss group`,
    );
  });

  it("without the HCL report's NV index (a Trusted Launch VM's vTPM): names the index and the VM it needs", async () => {
    const { run: fixtureRun } = fakeTpm("azure/snp-vtpm/genoa-evidence.trustee.json");
    const run: CommandRunner = async (command, args) =>
      command === "tpm2_nvread"
        ? { exitCode: 1, stdout: new Uint8Array(0), stderr: NO_SUCH_INDEX_STDERR }
        : fixtureRun(command, args);
    const provider = new AzureVtpmProvider({ kind: "azure-tdx", run, imds: noImds, tempDir: dir });
    const error = await rejection(provider.getEvidence(new Uint8Array(64)));
    expect(error.code).toBe("TPM_COMMAND_FAILED");
    expect(error.message).toBe(
      "tpm2_nvread: expected the paravisor's HCL report at NV index 0x01400001, found no such index (ERROR: Esys_TR_FromTPMPublic(0x18B) - tpm:handle(1):the handle is not correct for the use): this VM's vTPM is not an Azure confidential VM's; --tee azure-snp and azure-tdx need an Azure confidential VM (az vm create --security-type ConfidentialVM --enable-vtpm true, a DCasv5/ECasv5 size for azure-snp, DCesv6/ECesv6 for azure-tdx)",
    );
  });

  it("a failing tpm2_nvread for another cause keeps the tool's own error", async () => {
    const { run } = fakeTpm("azure/snp-vtpm/genoa-evidence.trustee.json", { failing: "tpm2_nvread" });
    const provider = new AzureVtpmProvider({ kind: "azure-snp", run, imds: noImds, tempDir: dir });
    const error = await rejection(provider.getEvidence(new Uint8Array(64)));
    expect(error.message).toMatch(/^tpm2_nvread: expected exit status 0, found 1: .*value is out of range/);
  });
});

describe("fetchImds (a loopback server standing in for 169.254.169.254)", () => {
  /** fetchImds over a server whose every answer is `answer`; the IMDS URL is sent to it. */
  async function imdsOn(answer: (response: ServerResponse) => void, timeoutMs: number) {
    const server = createServer((_, response) => answer(response));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const close = async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    };
    return { imds: fetchImds((_, init) => fetch(url, init), timeoutMs), close };
  }

  it("gives up on an IMDS that does not answer within the timeout (AZURE_IMDS_FAILED)", async () => {
    const { imds, close } = await imdsOn(() => undefined, 200);
    try {
      const error = await rejection(imds.getVcek());
      expect(error.code).toBe("AZURE_IMDS_FAILED");
      expect(error.message).toBe("IMDS THIM: no answer in 200 ms");
    } finally {
      await close();
    }
  });

  it("reads at most 64 KiB of an answer", async () => {
    const { imds, close } = await imdsOn((response) => {
      response.writeHead(200, { "content-type": "application/json" }).end(`{"quote": "${"A".repeat(100_000)}"}`);
    }, 5_000);
    try {
      const error = await rejection(imds.getTdQuote(new Uint8Array(1024)));
      expect(error.code).toBe("AZURE_IMDS_FAILED");
      expect(error.message).toBe("IMDS tdquote: expected at most 65536 bytes, found more");
    } finally {
      await close();
    }
  });
});

describe("detectTee", () => {
  async function tree(files: Record<string, string>): Promise<void> {
    for (const [path, content] of Object.entries(files)) {
      await fs.mkdir(join(dir, path, ".."), { recursive: true });
      await fs.writeFile(join(dir, path), content);
    }
  }
  const azureRun: CommandRunner = async (command, args) => ({
    exitCode: command === "tpm2_nvreadpublic" && args[0] === "0x01400001" ? 0 : 1,
    stdout: new Uint8Array(0),
    stderr: "",
  });

  it("finds SNP and TDX through the configfs-tsm provider, removing the probe entry", async () => {
    for (const [provider, kind] of [
      ["sev_guest", "snp"],
      ["tdx_guest", "tdx"],
    ] as const) {
      const emulator = await TsmEmulator.create(join(dir, provider), {
        provider,
        makeReport: fakeSnpReport,
        auxblob: null,
      });
      expect(await detectTee({ root: dir, tsmReportDir: emulator.root, fs: emulator })).toBe(kind);
      expect(emulator.removed).toEqual(emulator.created);
    }
  });

  it("falls back to /dev/sev-guest and /dev/tdx_guest", async () => {
    await tree({ "dev/tdx_guest": "" });
    expect(await detectTee({ root: dir })).toBe("tdx");
    await tree({ "dev/sev-guest": "" });
    expect(await detectTee({ root: dir })).toBe("snp");
  });

  it("finds an Azure CVM by DMI vendor, TPM device and the HCL NV index, AMD vs Intel by cpuinfo", async () => {
    await tree({
      "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
      "dev/tpmrm0": "",
      "proc/cpuinfo": "vendor_id\t: AuthenticAMD\n",
    });
    expect(await detectTee({ root: dir, run: azureRun })).toBe("azure-snp");
    await tree({ "proc/cpuinfo": "vendor_id\t: GenuineIntel\n" });
    expect(await detectTee({ root: dir, run: azureRun })).toBe("azure-tdx");
    // an ordinary Azure VM (trusted launch vTPM, no HCL report index) is not a CVM
    const noHcl: CommandRunner = async () => ({ exitCode: 1, stdout: new Uint8Array(0), stderr: "" });
    expect(await detectTee({ root: dir, run: noHcl })).toBeNull();
  });

  it("reads kernel attributes to a page (4 KiB) and cpuinfo's start: a larger file is no TEE", async () => {
    const padded = (text: string) => `${text}${" ".repeat(8 * 1024)}\n`;
    // configfs-tsm's provider, through the node file system: past a page, it is not the kernel's.
    const tsm = join(dir, "tsm");
    await fs.mkdir(tsm);
    const bigProvider: TsmFileSystem = {
      ...nodeTsmFileSystem,
      mkdir: async (path) => {
        await fs.mkdir(path);
        await fs.writeFile(join(path, "provider"), padded("sev_guest"));
      },
      rmdir: (path) => fs.rm(path, { recursive: true }),
    };
    expect(await detectTee({ root: dir, tsmReportDir: tsm, fs: bigProvider })).toBeNull();
    await tree({ "sys/class/dmi/id/sys_vendor": padded("Microsoft Corporation"), "dev/tpmrm0": "" });
    await tree({ "proc/cpuinfo": "vendor_id\t: AuthenticAMD\n" });
    expect(await detectTee({ root: dir, run: azureRun })).toBeNull();
    // The vendor is in cpuinfo's first lines; what lies past its first 4 KiB is not read.
    await tree({ "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n" });
    await tree({ "proc/cpuinfo": `${"flags\t: fpu\n".repeat(1024)}vendor_id\t: AuthenticAMD\n` });
    expect(await detectTee({ root: dir, run: azureRun })).toBeNull();
    await tree({ "proc/cpuinfo": "processor\t: 0\nvendor_id\t: AuthenticAMD\n" });
    expect(await detectTee({ root: dir, run: azureRun })).toBe("azure-snp");
  });

  it("returns null on a machine with none of these", async () => {
    expect(await detectTee({ root: dir, run: azureRun })).toBeNull();
  });

  /** A configfs-tsm report directory whose entries the kernel refuses to create with `failMkdir`. */
  const refusingTsm = (failMkdir: string) =>
    TsmEmulator.create(join(dir, failMkdir), {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: null,
      failMkdir,
    });

  it.each([
    ["EACCES", "TSM_PERMISSION_DENIED", "expected permission, found EACCES (run the enclave as root"],
    ["EPERM", "TSM_PERMISSION_DENIED", "expected permission, found EPERM (run the enclave as root"],
    ["EROFS", "TSM_IO_ERROR", "found EROFS (mounted read-only: systemd's ProtectKernelTunables=yes does so"],
  ])(
    "ends, when configfs-tsm refuses the probe entry with %s and nothing else is found, in --tee snp's %s",
    async (errno, code, fragment) => {
      const emulator = await refusingTsm(errno);
      const error = await rejectionOf(
        detectTee({ root: dir, tsmReportDir: emulator.root, fs: emulator, run: azureRun }),
        EvidenceError,
      );
      expect(error.code).toBe(code);
      expect(error.message).toContain(fragment);
      expect((error.cause as NodeJS.ErrnoException).code).toBe(errno);
      // The error --tee snp gives for the same refusal, but for the entry's name and the --tee it says.
      const explicit = await rejectionOf(
        requestTsmReport(new Uint8Array(64), {
          kind: "snp",
          root: emulator.root,
          fs: emulator,
          entryName: () => "ENTRY",
        }),
        EvidenceError,
      );
      expect(explicit.code).toBe(code);
      expect(error.message.replace(/cloister-detect-[0-9a-f]{12}/, "ENTRY")).toBe(`--tee auto: ${explicit.message}`);
      expect(emulator.created).toEqual([]);
    },
  );

  it("still finds a guest device or an Azure CVM when configfs-tsm refuses the probe entry (they need none)", async () => {
    const emulator = await refusingTsm("EACCES");
    const options = { root: dir, tsmReportDir: emulator.root, fs: emulator, run: azureRun };
    await tree({
      "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
      "dev/tpmrm0": "",
      "proc/cpuinfo": "vendor_id\t: GenuineIntel\n",
    });
    expect(await detectTee(options)).toBe("azure-tdx");
    await tree({ "dev/sev-guest": "" });
    expect(await detectTee(options)).toBe("snp");
  });

  it("finds no TEE (null, TEE_NOT_DETECTED) when configfs-tsm has no provider driver (ENXIO) or fails otherwise", async () => {
    const noProvider = await TsmEmulator.create(join(dir, "none"), {
      provider: null,
      makeReport: fakeSnpReport,
      auxblob: null,
    });
    expect(await detectTee({ root: dir, tsmReportDir: noProvider.root, fs: noProvider, run: azureRun })).toBeNull();
    const failing = await refusingTsm("EIO");
    expect(await detectTee({ root: dir, tsmReportDir: failing.root, fs: failing, run: azureRun })).toBeNull();
  });
});
