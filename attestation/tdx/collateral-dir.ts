/**
 * Intel PCS collateral kept in a directory, by file name: `tcbinfo-*.json` (the one whose fmspc
 * matches the quote's PCK certificate; if several match, the newest issued at or before `at`),
 * `qeidentity-*.json` (newest issued at or before `at`), `tcb-info-issuer-chain.pem`,
 * `qe-identity-issuer-chain.pem`, and `*.der` CRLs (of several by one issuer, the newest issued at
 * or before `at`). A file that does not parse is left out with a note. Read by `cloister verify-evidence
 * --collateral DIR` and by an enclave on TDX started with `--tdx-collateral DIR` (which serves it
 * next to its document). Parsing only: signatures and dates are checked by the verifier.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { toHex } from "../bytes.ts";
import { AttestationError } from "../errors.ts";
import { parseCrl } from "../x509.ts";
import { parseTdQeIdentity, parseTdxTcbInfo } from "./collateral.ts";
import type { TdxQuote } from "./parse.ts";
import type { TdxCollateral } from "./verify.ts";

export interface LoadedTdxCollateral {
  readonly collateral: TdxCollateral;
  readonly crls: Uint8Array[];
  readonly files: { tcbInfo: string | null; qeIdentity: string | null; crls: string[] };
  readonly notes: string[];
}

/** Newest by issueDate among those issued at or before `at`; else the newest overall. */
function pick<I extends { doc: { issueDate: Date } }>(items: readonly I[], at: Date): I | undefined {
  const sorted = [...items].sort((a, b) => b.doc.issueDate.getTime() - a.doc.issueDate.getTime());
  return sorted.find((i) => i.doc.issueDate.getTime() <= at.getTime()) ?? sorted[0];
}

/**
 * Loads the collateral for `quote` from `dir`. File-system problems are reported through `fail`
 * (the caller's error type), naming `option`.
 */
export async function loadTdxCollateralDirectory(
  dir: string,
  quote: TdxQuote,
  at: Date,
  option: string,
  fail: (message: string) => Error,
): Promise<LoadedTdxCollateral> {
  const readBytes = async (path: string): Promise<Uint8Array> => {
    try {
      return new Uint8Array(await readFile(path));
    } catch (error) {
      const why = (error as { code?: unknown }).code;
      throw fail(`${option}: cannot read "${path}" (${typeof why === "string" ? why : "read error"})`);
    }
  };
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (error) {
    const why = (error as { code?: unknown }).code;
    throw fail(`${option}: cannot list directory "${dir}" (${typeof why === "string" ? why : "error"})`);
  }
  const notes: string[] = [];
  const fmspc = toHex(quote.pckExtensions.fmspc);
  /**
   * Parses file `name` with `parse`. A file that does not parse (a half-written renewal, SGX
   * collateral kept in the same cache) is left out, with a note naming it and why.
   */
  const parsed = async <T>(name: string, parse: (bytes: Uint8Array) => T) => {
    const bytes = await readBytes(join(dir, name));
    try {
      return { file: name, json: bytes, doc: parse(bytes) };
    } catch (error) {
      if (!(error instanceof AttestationError)) throw error;
      notes.push(`${name} left out: ${error.code}: ${error.message}`);
      return null;
    }
  };
  const tcbInfos = [];
  for (const name of names.filter((n) => /^tcbinfo-.*\.json$/i.test(n))) {
    const item = await parsed(name, parseTdxTcbInfo);
    if (item !== null) tcbInfos.push(item);
  }
  const qeIdentities = [];
  for (const name of names.filter((n) => /^qeidentity-.*\.json$/i.test(n))) {
    const item = await parsed(name, parseTdQeIdentity);
    if (item !== null) qeIdentities.push(item);
  }
  const tcbInfo = pick(
    tcbInfos.filter((t) => toHex(t.doc.fmspc) === fmspc),
    at,
  );
  if (tcbInfo === undefined) {
    notes.push(`no TCB info for FMSPC ${fmspc} in ${dir} (${tcbInfos.length} tcbinfo file(s) for other FMSPCs)`);
  }
  const qeIdentity = pick(qeIdentities, at);
  if (qeIdentity === undefined) notes.push(`no qeidentity-*.json in ${dir}`);
  const chain = async (name: string) => {
    if (!names.includes(name)) throw fail(`${option}: "${dir}" has no ${name}`);
    return readBytes(join(dir, name));
  };
  // One CRL per issuer: of several (a renewal job keeping the old ones), the newest issued at or
  // before `at` — a verifier takes the first CRL of an issuer, so an expired one must not be served.
  const byIssuer = new Map<string, { file: string; bytes: Uint8Array; thisUpdate: Date }>();
  for (const name of names.filter((n) => n.toLowerCase().endsWith(".der"))) {
    const item = await parsed(name, parseCrl);
    if (item === null) continue;
    const { file, json: bytes, doc } = item;
    const issuer = toHex(doc.issuerDer);
    const held = byIssuer.get(issuer);
    const usable = (d: Date) => d.getTime() <= at.getTime();
    const better =
      held === undefined ||
      (usable(doc.thisUpdate) && (!usable(held.thisUpdate) || doc.thisUpdate > held.thisUpdate)) ||
      (!usable(doc.thisUpdate) && !usable(held.thisUpdate) && doc.thisUpdate < held.thisUpdate);
    if (better) byIssuer.set(issuer, { file, bytes, thisUpdate: doc.thisUpdate });
  }
  const crlFiles = [...byIssuer.values()].map((c) => c.file);
  const crls = [...byIssuer.values()].map((c) => c.bytes);
  return {
    collateral: {
      tcbInfo:
        tcbInfo === undefined
          ? undefined
          : { json: tcbInfo.json, issuerChain: await chain("tcb-info-issuer-chain.pem") },
      qeIdentity:
        qeIdentity === undefined
          ? undefined
          : { json: qeIdentity.json, issuerChain: await chain("qe-identity-issuer-chain.pem") },
    },
    crls,
    files: { tcbInfo: tcbInfo?.file ?? null, qeIdentity: qeIdentity?.file ?? null, crls: crlFiles },
    notes,
  };
}
