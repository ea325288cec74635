import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AttestationError } from "../../attestation/errors.ts";
import {
  ConfigfsTsmSnpProvider,
  ConfigfsTsmTdxProvider,
  requestTsmReport,
  type TsmFileSystem,
} from "../../attestation/providers/configfs-tsm.ts";
import { SNP_CERT_GUIDS, snpCertificate } from "../../attestation/providers/snp-cert-table.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { encodeCertificateTable, fakeSnpReport, TsmEmulator, type TsmEmulatorOptions } from "./tsm-emulator.ts";

const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);

const REPORT_DATA = Uint8Array.from({ length: 64 }, (_, i) => 0xa0 ^ i);

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), "cloister-tsm-"));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function certTable(): Promise<{ table: Uint8Array; vcek: Uint8Array; ask: Uint8Array; ark: Uint8Array }> {
  const vcek = new Uint8Array(await fs.readFile(new URL("snp/milan-trustee-v2-vcek.der", FIXTURES)));
  const ask = new TextEncoder().encode("ASK stand-in bytes");
  const ark = new TextEncoder().encode("ARK stand-in bytes, longer");
  const table = encodeCertificateTable([
    { guid: SNP_CERT_GUIDS.VCEK, data: vcek },
    { guid: SNP_CERT_GUIDS.ASK, data: ask },
    { guid: SNP_CERT_GUIDS.ARK, data: ark },
  ]);
  return { table, vcek, ask, ark };
}

/** An SNP guest's report directory with no certificate table, changed by `extra`. */
function snpEmulator(extra: Partial<TsmEmulatorOptions> = {}, parent = dir): Promise<TsmEmulator> {
  return TsmEmulator.create(parent, { provider: "sev_guest", makeReport: fakeSnpReport, auxblob: null, ...extra });
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<AttestationError> {
  const error = await rejectionOf(promise, AttestationError);
  expect(error.code).toBe(code);
  return error;
}

/** One SNP request over `emulator` fails with `code`, its message naming each of `fragments`. */
async function expectRequestError(emulator: TsmEmulator, code: string, fragments: readonly string[]): Promise<void> {
  const error = await expectCode(
    requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: emulator }),
    code,
  );
  for (const fragment of fragments) expect(error.message).toContain(fragment);
}

describe("configfs-tsm provider", () => {
  it("returns the SNP report made for our inblob and the parsed certificate table, and removes the entry", async () => {
    const { table, vcek, ask, ark } = await certTable();
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: table,
    });
    const provider = new ConfigfsTsmSnpProvider({ root: emulator.root, fs: emulator, privlevel: 2 });
    const evidence = await provider.getEvidence(REPORT_DATA);
    expect(evidence.kind).toBe("snp");
    expect(evidence.report).toEqual(fakeSnpReport(REPORT_DATA, 2));
    expect(evidence.report.subarray(0x50, 0x90)).toEqual(REPORT_DATA);
    expect(snpCertificate(evidence.certificates, "VCEK")).toEqual(vcek);
    expect(snpCertificate(evidence.certificates, "ASK")).toEqual(ask);
    expect(snpCertificate(evidence.certificates, "ARK")).toEqual(ark);
    expect(snpCertificate(evidence.certificates, "VLEK")).toBeUndefined();
    expect(emulator.writes.map((w) => w.attribute)).toEqual(["privlevel", "inblob"]);
    expect(emulator.created).toHaveLength(1);
    expect(emulator.removed).toEqual(emulator.created);
    expect(await fs.readdir(emulator.root)).toEqual([]);
  });

  it("returns a TDX quote (no auxblob attribute) and writes no privlevel", async () => {
    const quote = new Uint8Array(await fs.readFile(new URL("tdx/quote-v4-trustee.bin", FIXTURES)));
    const emulator = await TsmEmulator.create(dir, { provider: "tdx_guest", makeReport: () => quote, auxblob: null });
    const evidence = await new ConfigfsTsmTdxProvider({ root: emulator.root, fs: emulator }).getEvidence(REPORT_DATA);
    expect(evidence).toEqual({ kind: "tdx", quote, source: "configfs-tsm" });
    expect(emulator.writes.map((w) => w.attribute)).toEqual(["inblob"]);
    expect(emulator.writes[0]?.data).toEqual(REPORT_DATA);
    expect(await fs.readdir(emulator.root)).toEqual([]);
  });

  it("SNP with no level given: writes the kernel's privlevel_floor when above 0 (a guest under an SVSM), none at 0", async () => {
    const emulator = await snpEmulator({ privlevelFloor: 2 });
    const evidence = await new ConfigfsTsmSnpProvider({ root: emulator.root, fs: emulator }).getEvidence(REPORT_DATA);
    expect(evidence.report).toEqual(fakeSnpReport(REPORT_DATA, 2));
    expect(emulator.writes.map((w) => [w.attribute, new TextDecoder().decode(w.data)])).toEqual([
      ["privlevel", "2\n"],
      ["inblob", new TextDecoder().decode(REPORT_DATA)],
    ]);
    const atZero = await snpEmulator({}, join(dir, "zero"));
    await new ConfigfsTsmSnpProvider({ root: atZero.root, fs: atZero }).getEvidence(REPORT_DATA);
    expect(atZero.writes.map((w) => w.attribute)).toEqual(["inblob"]);
  });

  it("refuses a privlevel_floor that is not a level 0..3 (TSM_BAD_PRIVLEVEL_FLOOR)", async () => {
    const emulator = await snpEmulator({ privlevelFloor: 7 });
    await expectRequestError(emulator, "TSM_BAD_PRIVLEVEL_FLOOR", ["privlevel_floor", '"7"']);
    expect(emulator.removed).toEqual(emulator.created);
  });

  /** The emulator's file system with `changed` operations in place of its own. */
  const through = (emulator: TsmEmulator, changed: Partial<TsmFileSystem>): TsmFileSystem => ({
    isDirectory: (path) => emulator.isDirectory(path),
    mkdir: (path) => emulator.mkdir(path),
    rmdir: (path) => emulator.rmdir(path),
    writeFile: (path, data) => emulator.writeFile(path, data),
    readFile: (path, maxBytes) => emulator.readFile(path, maxBytes),
    ...changed,
  });

  it("refuses an empty outblob (TSM_EMPTY_OUTBLOB) and a generation that is not a counter (TSM_BAD_GENERATION)", async () => {
    const empty = await snpEmulator({ makeReport: () => new Uint8Array(0) }, join(dir, "empty"));
    await expectRequestError(empty, "TSM_EMPTY_OUTBLOB", ["outblob"]);
    expect(empty.removed).toEqual(empty.created);
    const emulator = await snpEmulator({}, join(dir, "generation"));
    const garbled = through(emulator, {
      readFile: async (path) =>
        basename(path) === "generation" ? new TextEncoder().encode("-1\n") : emulator.readFile(path),
    });
    await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: garbled }),
      "TSM_BAD_GENERATION",
    );
    expect(emulator.removed).toEqual(emulator.created);
  });

  it("reads every attribute to a bound: outblob and auxblob to 64 KiB, the text attributes to 32 bytes", async () => {
    const { table } = await certTable();
    const emulator = await snpEmulator({ auxblob: table, privlevelFloor: 1 });
    await new ConfigfsTsmSnpProvider({ root: emulator.root, fs: emulator }).getEvidence(REPORT_DATA);
    const bounds = new Map(emulator.reads.map((read) => [read.attribute, read.maxBytes]));
    expect(Object.fromEntries(bounds)).toEqual({
      provider: 32,
      generation: 32,
      privlevel_floor: 32,
      outblob: 64 * 1024,
      auxblob: 64 * 1024,
    });
    expect(emulator.reads.every((read) => read.maxBytes === bounds.get(read.attribute))).toBe(true);
  });

  it("refuses an outblob or auxblob past 64 KiB (the kernel caps each at 32 KiB) as TSM_BLOB_TOO_LARGE, read no further", async () => {
    const past = new Uint8Array(64 * 1024 + 1).fill(0x5a);
    const outblob = await snpEmulator({ makeReport: () => past }, join(dir, "outblob"));
    await expectRequestError(outblob, "TSM_BLOB_TOO_LARGE", [
      "outblob: expected at most 65536 bytes (the kernel caps each blob at 32 KiB, TSM_OUTBLOB_MAX), found more",
    ]);
    expect(outblob.removed).toEqual(outblob.created);
    const auxblob = await snpEmulator({ auxblob: past }, join(dir, "auxblob"));
    await expectRequestError(auxblob, "TSM_BLOB_TOO_LARGE", ["auxblob: expected at most 65536 bytes"]);
    expect(auxblob.removed).toEqual(auxblob.created);
    // At the bound, a blob is taken (the provider does not parse the report).
    const atBound = new Uint8Array(64 * 1024).fill(0x5a);
    const tdx = await TsmEmulator.create(join(dir, "tdx"), {
      provider: "tdx_guest",
      makeReport: () => atBound,
      auxblob: null,
    });
    const evidence = await new ConfigfsTsmTdxProvider({ root: tdx.root, fs: tdx }).getEvidence(REPORT_DATA);
    expect(evidence.quote).toEqual(atBound);
  });

  it("refuses a generation, privlevel_floor or provider past 32 bytes by its code, though its trimmed text would pass", async () => {
    const padded = (text: string) => new TextEncoder().encode(`${text}\n${" ".repeat(40)}`);
    for (const [attribute, text, code] of [
      ["generation", "1", "TSM_BAD_GENERATION"],
      ["privlevel_floor", "0", "TSM_BAD_PRIVLEVEL_FLOOR"],
      ["provider", "sev_guest", "TSM_PROVIDER_MISMATCH"],
    ] as const) {
      const emulator = await snpEmulator({}, join(dir, attribute));
      const padding = through(emulator, {
        readFile: async (path, maxBytes) =>
          basename(path) === attribute
            ? padded(text).subarray(0, (maxBytes ?? Infinity) + 1)
            : emulator.readFile(path, maxBytes),
      });
      const error = await expectCode(
        requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: padding }),
        code,
      );
      expect(error.message).toContain(`${attribute}: expected`);
      expect(error.message).toContain("found more than 32 bytes");
      expect(emulator.removed).toEqual(emulator.created);
    }
  });

  it("reports an entry it could not remove after a report (TSM_CLEANUP_FAILED), but never over a request's own error", async () => {
    const stuck = (emulator: TsmEmulator) =>
      through(emulator, {
        rmdir: async (path) => {
          throw Object.assign(new Error(`EBUSY: ${path}`), { code: "EBUSY" });
        },
      });
    const ok = await snpEmulator({}, join(dir, "ok"));
    const error = await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: ok.root, fs: stuck(ok) }),
      "TSM_CLEANUP_FAILED",
    );
    expect(error.message).toContain("EBUSY");
    const failing = await snpEmulator({ failWrite: { attribute: "inblob", errno: "EIO" } }, join(dir, "failing"));
    await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: failing.root, fs: stuck(failing) }),
      "TSM_IO_ERROR",
    );
  });

  it("detects a concurrent writer through generation, retries on a fresh entry and then succeeds", async () => {
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: null,
      racingAttempts: 2,
    });
    const report = await requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: emulator });
    expect(report.attempts).toBe(3);
    expect(report.outblob).toEqual(fakeSnpReport(REPORT_DATA, 0));
    expect(report.generation).toBe(1);
    expect(new Set(emulator.created).size).toBe(3);
    expect(emulator.removed).toEqual(emulator.created);
  });

  it("gives up with TSM_GENERATION_RACE after maxAttempts when the writer persists, removing every entry", async () => {
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: null,
      racingAttempts: 100,
    });
    const error = await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: emulator, maxAttempts: 4 }),
      "TSM_GENERATION_RACE",
    );
    expect(error.stage).toBe("evidence");
    expect(error.message).toContain("4 attempts");
    expect(emulator.created).toHaveLength(4);
    expect(emulator.removed).toEqual(emulator.created);
  });

  it("reports a missing provider driver (the kernel's ENXIO on mkdir) as TSM_NO_PROVIDER", async () => {
    const emulator = await TsmEmulator.create(dir, { provider: null, makeReport: fakeSnpReport, auxblob: null });
    await expectRequestError(emulator, "TSM_NO_PROVIDER", [
      "mkdir",
      "ENXIO",
      "sev-guest or tdx-guest driver",
      "--confidential-compute-type=SEV_SNP",
      "--tee azure-snp",
    ]);
    expect(emulator.created).toEqual([]);
    expect(await fs.readdir(emulator.root)).toEqual([]);
  });

  it("refuses a provider of the other TEE (TSM_PROVIDER_MISMATCH)", async () => {
    const emulator = await TsmEmulator.create(dir, { provider: "tdx_guest", makeReport: fakeSnpReport, auxblob: null });
    await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: emulator }),
      "TSM_PROVIDER_MISMATCH",
    );
    expect(emulator.writes).toEqual([]);
  });

  it.each([
    ["EACCES", "TSM_PERMISSION_DENIED"],
    ["EINVAL", "TSM_WRITE_REJECTED"],
    ["EIO", "TSM_IO_ERROR"],
  ])("maps a %s write error on inblob to %s and still removes the entry", async (errno, code) => {
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: null,
      failWrite: { attribute: "inblob", errno },
    });
    const error = await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: emulator }),
      code,
    );
    expect(error.message).toContain("inblob");
    expect(error.message).toContain(errno);
    expect(emulator.removed).toEqual(emulator.created);
    expect(await fs.readdir(emulator.root)).toEqual([]);
  });

  it("maps an EINVAL outblob read (the provider refused the request) to TSM_READ_REJECTED, not a write rejection", async () => {
    const emulator = await snpEmulator({ failRead: { attribute: "outblob", errno: "EINVAL" } });
    await expectRequestError(emulator, "TSM_READ_REJECTED", [
      "read",
      "outblob",
      "expected the provider to make a report",
    ]);
    expect(emulator.removed).toEqual(emulator.created);
  });

  it("maps an EINVAL privlevel write to TSM_WRITE_REJECTED", async () => {
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: null,
      failWrite: { attribute: "privlevel", errno: "EINVAL" },
    });
    await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: emulator, privlevel: 1 }),
      "TSM_WRITE_REJECTED",
    );
  });

  it("names the kernel requirement when configfs-tsm is missing (real node:fs on an empty directory)", async () => {
    const error = await expectCode(
      new ConfigfsTsmSnpProvider({ root: join(dir, "sys/kernel/config/tsm/report") }).getEvidence(REPORT_DATA),
      "TSM_UNAVAILABLE",
    );
    expect(error.message).toContain("Linux >= 6.7");
    expect(error.message).toContain("CONFIG_TSM_REPORTS");
    expect(error.message).toContain("configfs mounted");
    // The cloud VM it needs, and Azure's other --tee (its SNP/TDX guests have no configfs-tsm provider).
    expect(error.message).toContain(
      "on GCP, a Confidential VM created with --confidential-compute-type=SEV_SNP (N2D) or TDX (C3, A3 a3-highgpu-1g); an Azure confidential VM takes --tee azure-snp or azure-tdx instead",
    );
  });

  it("maps an EACCES on mkdir (enclave not running as root) to TSM_PERMISSION_DENIED", async () => {
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: null,
      failMkdir: "EACCES",
    });
    const error = await expectCode(
      requestTsmReport(REPORT_DATA, { kind: "snp", root: emulator.root, fs: emulator }),
      "TSM_PERMISSION_DENIED",
    );
    expect(error.message).toContain("mkdir");
    expect(emulator.writes).toEqual([]);
  });

  it("names the read-only mounts behind an EROFS on mkdir (systemd's ProtectKernelTunables, a container's volume) and their remedies", async () => {
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: null,
      failMkdir: "EROFS",
    });
    await expectRequestError(emulator, "TSM_IO_ERROR", [
      "mkdir",
      "expected a writable report directory, found EROFS",
      "ProtectKernelTunables=yes",
      "ReadWritePaths=/sys/kernel/config/tsm/report",
      "in a container, mount it read-write",
    ]);
    expect(emulator.created).toEqual([]);
  });

  it("rejects bad options before touching the file system", async () => {
    const emulator = await TsmEmulator.create(dir, { provider: "sev_guest", makeReport: fakeSnpReport, auxblob: null });
    const base = { root: emulator.root, fs: emulator } as const;
    await expectCode(requestTsmReport(new Uint8Array(32), { ...base, kind: "snp" }), "REPORT_DATA_SIZE");
    await expectCode(requestTsmReport(REPORT_DATA, { ...base, kind: "snp", privlevel: 4 }), "TSM_PRIVLEVEL_RANGE");
    await expectCode(
      requestTsmReport(REPORT_DATA, { ...base, kind: "tdx", privlevel: 0 }),
      "TSM_PRIVLEVEL_UNSUPPORTED",
    );
    await expectCode(requestTsmReport(REPORT_DATA, { ...base, kind: "snp", maxAttempts: 0 }), "TSM_MAX_ATTEMPTS_RANGE");
    expect(emulator.created).toEqual([]);
  });

  it("rejects a malformed certificate table from the host with a typed parse error", async () => {
    const { table } = await certTable();
    const truncated = table.subarray(0, 30); // cuts through the second entry: no terminator
    const emulator = await TsmEmulator.create(dir, {
      provider: "sev_guest",
      makeReport: fakeSnpReport,
      auxblob: truncated,
    });
    const error = await expectCode(
      new ConfigfsTsmSnpProvider({ root: emulator.root, fs: emulator }).getEvidence(REPORT_DATA),
      "SNP_CERT_TABLE_UNTERMINATED",
    );
    expect(error.stage).toBe("parse");
  });
});
