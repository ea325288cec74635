/**
 * Test helper: a small emulator of the kernel's configfs-tsm report directory, over a real
 * temporary directory. `mkdir` of an entry creates the attribute files the kernel would show;
 * writes to `inblob`/`privlevel` bump `generation`; reading `outblob` makes a report from the
 * current inblob. Knobs simulate concurrent writers, a missing provider driver and write errors.
 * Not product code: the provider under test only sees the TsmFileSystem interface.
 */
import * as fs from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { TsmFileSystem } from "../../attestation/providers/configfs-tsm.ts";
import { guidToBytes } from "../../attestation/providers/snp-cert-table.ts";

function errnoError(code: string, path: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: emulated kernel error, ${path}`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}

export interface TsmEmulatorOptions {
  readonly root: string;
  /** null: no provider driver registered (creating an entry fails with ENXIO, as in the kernel). */
  readonly provider: "sev_guest" | "tdx_guest" | null;
  /** Report bytes for a given inblob and privlevel. */
  readonly makeReport: (inblob: Uint8Array, privlevel: number) => Uint8Array;
  /** SNP certificate table for auxblob; null: no auxblob attribute (TDX). */
  readonly auxblob: Uint8Array | null;
  /** Number of attempts during which a concurrent writer bumps generation while outblob is read. */
  readonly racingAttempts?: number;
  /** Make a write to this attribute fail with this errno. */
  readonly failWrite?: { readonly attribute: string; readonly errno: string };
  /**
   * sev_guest only: the entry's `privlevel_floor` (the kernel's: the VMPL of the guest's VMPCK key;
   * default 0). A lower `privlevel` write fails with EINVAL, and reading `outblob` at a lower level
   * fails with EIO, standing in for the firmware refusing a report below the guest's VMPL.
   */
  readonly privlevelFloor?: number;
  /** Make a read of this attribute fail with this errno. */
  readonly failRead?: { readonly attribute: string; readonly errno: string };
  /** Make creating an entry fail with this errno. */
  readonly failMkdir?: string;
}

export class TsmEmulator implements TsmFileSystem {
  readonly created: string[] = [];
  readonly removed: string[] = [];
  readonly writes: { attribute: string; data: Uint8Array }[] = [];
  /** Each attribute read, with the bound it was read to (undefined: read whole). */
  readonly reads: { attribute: string; maxBytes: number | undefined }[] = [];
  private racesLeft: number;

  constructor(private readonly options: TsmEmulatorOptions) {
    this.racesLeft = options.racingAttempts ?? 0;
  }

  static async create(parent: string, options: Omit<TsmEmulatorOptions, "root">): Promise<TsmEmulator> {
    const root = join(parent, "sys/kernel/config/tsm/report");
    await fs.mkdir(root, { recursive: true });
    return new TsmEmulator({ ...options, root });
  }

  get root(): string {
    return this.options.root;
  }

  async isDirectory(path: string): Promise<boolean> {
    try {
      return (await fs.stat(path)).isDirectory();
    } catch {
      return false;
    }
  }

  async mkdir(path: string): Promise<void> {
    if (dirname(path) !== this.options.root) throw errnoError("EPERM", path);
    if (this.options.failMkdir !== undefined) throw errnoError(this.options.failMkdir, path);
    // tsm_report_make_item refuses an entry while no provider is registered.
    if (this.options.provider === null) throw errnoError("ENXIO", path);
    await fs.mkdir(path);
    this.created.push(basename(path));
    await fs.writeFile(join(path, "provider"), `${this.options.provider}\n`);
    await fs.writeFile(join(path, "generation"), "0\n");
    await fs.writeFile(join(path, "inblob"), new Uint8Array(0));
    await fs.writeFile(join(path, "privlevel"), "0\n");
    if (this.options.provider === "sev_guest") {
      await fs.writeFile(join(path, "privlevel_floor"), `${this.options.privlevelFloor ?? 0}\n`);
    }
    await fs.writeFile(join(path, "outblob"), new Uint8Array(0));
    if (this.options.auxblob !== null) await fs.writeFile(join(path, "auxblob"), new Uint8Array(0));
  }

  async rmdir(path: string): Promise<void> {
    // configfs removes the attribute files with the item.
    await fs.rm(path, { recursive: true });
    this.removed.push(basename(path));
  }

  private async bumpGeneration(dir: string): Promise<void> {
    const current = Number((await fs.readFile(join(dir, "generation"), "utf8")).trim());
    await fs.writeFile(join(dir, "generation"), `${current + 1}\n`);
  }

  async writeFile(path: string, data: Uint8Array): Promise<void> {
    const attribute = basename(path);
    const dir = dirname(path);
    if (this.options.failWrite?.attribute === attribute) throw errnoError(this.options.failWrite.errno, path);
    if (attribute !== "inblob" && attribute !== "privlevel") throw errnoError("EACCES", path);
    if (attribute === "inblob" && data.length > 64) throw errnoError("EINVAL", path);
    if (
      attribute === "privlevel" &&
      Number(new TextDecoder().decode(data).trim()) < (this.options.privlevelFloor ?? 0)
    ) {
      throw errnoError("EINVAL", path);
    }
    this.writes.push({ attribute, data: new Uint8Array(data) });
    await fs.writeFile(path, data);
    await this.bumpGeneration(dir);
  }

  /** As node's file system: with `maxBytes`, at most maxBytes + 1 bytes are returned. */
  async readFile(path: string, maxBytes?: number): Promise<Uint8Array> {
    const attribute = basename(path);
    const dir = dirname(path);
    this.reads.push({ attribute, maxBytes });
    if (this.options.failRead?.attribute === attribute) throw errnoError(this.options.failRead.errno, path);
    if (attribute === "outblob") {
      const inblob = new Uint8Array(await fs.readFile(join(dir, "inblob")));
      const privlevel = Number((await fs.readFile(join(dir, "privlevel"), "utf8")).trim());
      if (privlevel < (this.options.privlevelFloor ?? 0)) throw errnoError("EIO", path);
      await fs.writeFile(path, this.options.makeReport(inblob, privlevel));
      if (this.racesLeft > 0) {
        // Another process writes its own inblob to the same entry while we read.
        this.racesLeft--;
        await this.bumpGeneration(dir);
      }
    }
    if (attribute === "auxblob" && this.options.auxblob !== null) {
      await fs.writeFile(path, this.options.auxblob);
    }
    const bytes = new Uint8Array(await fs.readFile(path));
    return maxBytes === undefined ? bytes : bytes.subarray(0, maxBytes + 1);
  }
}

/** An SNP certificate table as a host would build it (RFC 4122 GUID bytes). */
export function encodeCertificateTable(entries: readonly { guid: string; data: Uint8Array }[]): Uint8Array {
  const headerSize = (entries.length + 1) * 24;
  const total = headerSize + entries.reduce((n, e) => n + e.data.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = headerSize;
  entries.forEach((entry, i) => {
    out.set(guidToBytes(entry.guid), i * 24);
    view.setUint32(i * 24 + 16, offset, true);
    view.setUint32(i * 24 + 20, entry.data.length, true);
    out.set(entry.data, offset);
    offset += entry.data.length;
  });
  return out;
}

/** A deterministic 1184-byte stand-in for an SNP report carrying inblob at REPORT_DATA (0x50). */
export function fakeSnpReport(inblob: Uint8Array, privlevel: number): Uint8Array {
  const report = new Uint8Array(1184);
  for (let i = 0; i < report.length; i++) report[i] = (i * 7) & 0xff;
  report.set(inblob, 0x50);
  report[0x30] = privlevel;
  return report;
}
