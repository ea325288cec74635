/**
 * Intel PCS collateral kept in a directory, by file name: `tcbinfo-*.json` (the one whose fmspc
 * matches the quote's PCK certificate; if several match, the newest issued at or before `at`),
 * `qeidentity-*.json` (newest issued at or before `at`), `tcb-info-issuer-chain.pem`,
 * `qe-identity-issuer-chain.pem`, and `*.der` CRLs (of several by one issuer, the newest issued at
 * or before `at`). A file that does not parse is left out with a note. Read by `cloister verify-evidence
 * --collateral DIR` and by an enclave on TDX started with `--tdx-collateral DIR` (which serves it
 * next to its document). Parsing only: signatures and dates are checked by the verifier.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileErrorCause, fileMessage, type InputBound, readFileToBound } from "../bounded-read.ts";
import { toHex } from "../bytes.ts";
import { AttestationError } from "../errors.ts";
import { describeUntrusted } from "../untrusted-text.ts";
import { type Crl, parseCrl } from "../x509.ts";
import { parseTdQeIdentity, parseTdxTcbInfo } from "./collateral.ts";
import type { TdxQuote } from "./parse.ts";
import type { TdxCollateral } from "./verify.ts";

/** The issuer chains' file names in a collateral folder (`attest --evidence-out` writes them so). */
export const TCB_INFO_ISSUER_CHAIN_FILE = "tcb-info-issuer-chain.pem";
export const QE_IDENTITY_ISSUER_CHAIN_FILE = "qe-identity-issuer-chain.pem";

/**
 * Each file of the directory is read to 512 KiB, what the wire form takes of one (collateral.ts:
 * MAX_TEXT characters): Intel's TCB info, QE identity, issuer chains and CRLs are a few KiB each. A
 * larger file (a wrong directory, a device) is refused, naming the option, the file and the bound,
 * never held whole.
 */
const COLLATERAL_FILE_BOUND: InputBound = {
  bytes: 512 * 1024,
  expected:
    "Intel PCS collateral (a TCB info, QE identity, issuer chain or CRL), a few KiB; the wire form takes 512 KiB of one",
};

/** A file of the directory and what it parsed as. */
interface ParsedFile<T> {
  readonly file: string;
  readonly bytes: Uint8Array;
  readonly doc: T;
}

export interface LoadedTdxCollateral {
  readonly collateral: TdxCollateral;
  readonly crls: Uint8Array[];
  readonly files: { tcbInfo: string | null; qeIdentity: string | null; crls: string[] };
  readonly notes: string[];
}

/**
 * Of several issues of one document (renewals kept side by side), the one to use at `at`: the
 * newest current one (issued, not past its nextUpdate) issued at least `settleMs` before `at`, so a
 * verifier whose clock is a little behind does not find it issued in its future; else the newest
 * current one; else the newest issued by `at` (stale: the verifier says so); else the earliest.
 */
function pick<I>(
  items: readonly I[],
  at: Date,
  settleMs: number,
  dates: (item: I) => { issued: Date; nextUpdate: Date | undefined },
): I | undefined {
  const t = at.getTime();
  const issued = (i: I) => dates(i).issued.getTime();
  const newestFirst = [...items].sort((a, b) => issued(b) - issued(a));
  const current = newestFirst.filter((i) => issued(i) <= t && t <= (dates(i).nextUpdate?.getTime() ?? Infinity));
  return (
    current.find((i) => issued(i) <= t - settleMs) ??
    current[0] ??
    newestFirst.find((i) => issued(i) <= t) ??
    newestFirst.at(-1)
  );
}

const documentDates = (i: { doc: { issueDate: Date; nextUpdate: Date } }) => ({
  issued: i.doc.issueDate,
  nextUpdate: i.doc.nextUpdate,
});

/**
 * Loads the collateral for `quote` from `dir`. File-system problems are reported through `fail`
 * (the caller's error type), naming `option`, the directory, the entry (as untrusted text) and why
 * (fileErrorCause, as the CLI's other file options say it), with the fs error as the cause when
 * there is one.
 */
export async function loadTdxCollateralDirectory(
  dir: string,
  quote: TdxQuote,
  at: Date,
  option: string,
  fail: (message: string, cause?: unknown) => Error,
  /** Prefer issues at least this old when a current one is (an enclave serving verifiers' clocks). */
  settleMs = 0,
): Promise<LoadedTdxCollateral> {
  /**
   * An entry as a message names it: its name is whatever the directory holds (written by a renewal
   * job, or by anyone who can write there), so it is shown as untrusted text (a terminal escape or
   * a bidirectional override in a name cannot reach a terminal or a log), after the directory given.
   */
  const entry = (name: string) => `${describeUntrusted(name)} in "${dir}"`;
  const readBytes = async (name: string): Promise<Uint8Array> => {
    const path = join(dir, name);
    const bytes = await readFileToBound(
      path,
      COLLATERAL_FILE_BOUND,
      (error) => fail(`${option} ${entry(name)}: cannot read (${fileErrorCause(error)})`, error),
      ({ reason, cause }) => fail(`${option} ${entry(name)}: ${reason}`, cause),
    );
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  };
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (error) {
    throw fail(fileMessage(dir, option, `cannot list directory (${fileErrorCause(error)})`), error);
  }
  const notes: string[] = [];
  const fmspc = toHex(quote.pckExtensions.fmspc);
  /**
   * Parses file `name` with `parse`. A file that does not parse (a half-written renewal, SGX
   * collateral kept in the same cache) is left out, with a note naming it and why.
   */
  const parsed = async <T>(name: string, parse: (bytes: Uint8Array) => T): Promise<ParsedFile<T> | null> => {
    const bytes = await readBytes(name);
    try {
      return { file: name, bytes, doc: parse(bytes) };
    } catch (error) {
      if (!(error instanceof AttestationError)) throw error;
      notes.push(`${describeUntrusted(name)} left out: ${error.code}: ${error.message}`);
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
    settleMs,
    documentDates,
  );
  if (tcbInfo === undefined) {
    notes.push(`no TCB info for FMSPC ${fmspc} in ${dir} (${tcbInfos.length} tcbinfo file(s) for other FMSPCs)`);
  }
  const qeIdentity = pick(qeIdentities, at, settleMs, documentDates);
  if (qeIdentity === undefined) notes.push(`no qeidentity-*.json in ${dir}`);
  const chain = async (name: string) => {
    if (!names.includes(name)) throw fail(fileMessage(dir, option, `has no ${name}`));
    return readBytes(name);
  };
  // One CRL per issuer, picked like the documents above: an expired one kept by a renewal job is
  // not served (a verifier would refuse any serial it lists, and it adds nothing current).
  const byIssuer = new Map<string, ParsedFile<Crl>[]>();
  for (const name of names.filter((n) => n.toLowerCase().endsWith(".der"))) {
    const item = await parsed(name, parseCrl);
    if (item === null) continue;
    const issuer = toHex(item.doc.issuerDer);
    byIssuer.set(issuer, [...(byIssuer.get(issuer) ?? []), item]);
  }
  const chosen = [...byIssuer.values()].map(
    (all) =>
      pick(all, at, settleMs, (i) => ({ issued: i.doc.thisUpdate, nextUpdate: i.doc.nextUpdate })) as ParsedFile<Crl>,
  );
  const crlFiles = chosen.map((c) => c.file);
  const crls = chosen.map((c) => c.bytes);
  return {
    collateral: {
      tcbInfo:
        tcbInfo === undefined
          ? undefined
          : { json: tcbInfo.bytes, issuerChain: await chain(TCB_INFO_ISSUER_CHAIN_FILE) },
      qeIdentity:
        qeIdentity === undefined
          ? undefined
          : { json: qeIdentity.bytes, issuerChain: await chain(QE_IDENTITY_ISSUER_CHAIN_FILE) },
    },
    crls,
    files: { tcbInfo: tcbInfo?.file ?? null, qeIdentity: qeIdentity?.file ?? null, crls: crlFiles },
    notes,
  };
}
