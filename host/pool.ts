/**
 * The host's pool of enclaves (DESIGN.md "Planned next": a host that routes across a pool of
 * enclaves and re-attests them). Every enclave boot has its own keys, and a sealed request is
 * bound to one of them, so the host routes by the only thing it may read: the envelope's enclave
 * key id (`SHA-256(X25519 key)[0..16]`). New sessions (`GET /v1/attestation`) go to the member with
 * the fewest sealed requests in flight; a client's challenge and checkpoint go to the member it
 * names (`?enclave=<key id>`), so its nonce answer comes from the enclave whose document it got.
 *
 * The pool re-reads every member's document on a timer (and whenever it hands one out), so it
 * notices restarts (new keys) and members that stopped answering, and offers new sessions only to
 * members that answer. That is routing, not security: every client verifies the enclave it is
 * given for itself, and the host is as untrusted as ever (it does not verify documents: it loads
 * no verification or sealing code).
 *
 * Key ids are computed here from the public document (node:crypto).
 */
import { createHash } from "node:crypto";
import { unverifiedDocumentSealingKey } from "../attestation/document-key.ts";
import { KEY_ID_LENGTH } from "../sealed/envelope.ts";
import { checkEnclaveUrl, enclaveUrlRepeat } from "./enclave-url.ts";
import { HostError } from "./errors.ts";

export type MemberState = "unknown" | "ready" | "unreachable";

/**
 * Why a member is not ready, kept as parts and written out where it is shown (memberReasonText):
 * /healthz, the host's `pool:` log lines, a single enclave's ENCLAVE_UNREACHABLE refusal. Fixed
 * words only (the host's messages, the pool's, HTTP statuses, the enclave's word for a 503): never
 * an answer's content, a URL, a key or a secret.
 */
export interface MemberReason {
  /**
   * What found it so: a read of its document, a sealed request forwarded to it, or a nonce question
   * or checkpoint it refused at connect; absent for what the enclave said of itself (`draining`,
   * host/app.ts notServing).
   */
  readonly step?: "document" | "sealed" | "challenge" | "checkpoint";
  /** The host's error code, when one of the host's own refusals ended the read (HostError). */
  readonly code?: string;
  /** The refusal's message, or the pool's words (`HTTP 503`, `no document in its answer`), or the enclave's word. */
  readonly words: string;
}

export interface PoolMember {
  /** 0-based position in the host's `--enclave-url` list (what /healthz shows instead of URLs). */
  readonly index: number;
  readonly url: string;
  /** Hex key id of the member's current boot, from its last document; null before the first. */
  keyId: string | null;
  state: MemberState;
  /** Why the member is not ready (what failed when it was last read). */
  reason: MemberReason | null;
  /** Sealed requests forwarded to it and not yet ended. */
  inFlight: number;
}

export interface PoolOptions {
  /** GETs `url` (a member's `/attestation`) and returns its status and whole body as text. */
  readonly fetchText: (url: string) => Promise<{ status: number; text: string }>;
  readonly refreshMs?: number;
  readonly onChange?: (member: PoolMember) => void;
}

/** `SHA-256(X25519 key)[0..16]` of the document's `cnf.jwk` (the envelope's key id), or null. */
export function documentKeyId(document: string): string | null {
  const key = unverifiedDocumentSealingKey(document);
  return key === null ? null : createHash("sha256").update(key).digest().subarray(0, KEY_ID_LENGTH).toString("hex");
}

/** Shortest time between two refreshes a request for an unknown key id may start (findKeyId). */
const MIN_ON_DEMAND_REFRESH_MS = 1000;

export class EnclavePool {
  /** The members, used here; never handed out (a frozen array is slower to filter and sort in V8). */
  readonly #members: readonly PoolMember[];
  /** What `members` hands out: a frozen copy behind a getter, so plain JavaScript swaps no member. */
  readonly #shown: readonly PoolMember[];
  #next = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | null = null;
  /** When (performance.now()) a request for an unknown key id last started a refresh. */
  #onDemandAt = Number.NEGATIVE_INFINITY;
  /**
   * Per member: the number of the last read of its document started (readStarted), and of the
   * latest-started read whose outcome was taken. Reads end in any order; one that ends after a read
   * started later was taken is dropped, so a slow read never puts back an old key id, nor marks
   * unreachable a member a newer read found ready.
   */
  readonly #reads = new Map<PoolMember, { started: number; taken: number }>();

  constructor(
    urls: readonly string[],
    private readonly options: PoolOptions,
  ) {
    if (urls.length === 0) throw new RangeError("enclave pool: expected at least one enclave URL");
    for (const url of urls) checkEnclaveUrl(url);
    // One enclave listed twice would be two members, and byKeyId finds the first only (enclaveUrlRepeat).
    const repeat = enclaveUrlRepeat(urls);
    if (repeat !== null) throw new RangeError(`enclaveUrl: ${repeat}`);
    const members = urls.map(
      (url, index) =>
        // The checked URL (and the index) made unwritable and unconfigurable, not only `readonly` for
        // TypeScript: plain JavaScript assigning `member.url` would have the refresh (and a host made
        // from this pool) read documents from a URL never checked. Read once per member per refresh.
        Object.defineProperties(
          { keyId: null, state: "unknown" as MemberState, reason: null, inFlight: 0 },
          {
            index: { value: index, enumerable: true, writable: false, configurable: false },
            url: { value: url.replace(/\/+$/, ""), enumerable: true, writable: false, configurable: false },
          },
        ) as PoolMember,
    );
    this.#members = members;
    for (const member of members) this.#reads.set(member, { started: 0, taken: 0 });
    this.#shown = Object.freeze([...members]);
  }

  /** The members, in the host's `--enclave-url` order. */
  get members(): readonly PoolMember[] {
    return this.#shown;
  }

  /**
   * True when there is more than one member: a single-enclave host forwards every sealed request to
   * it unrouted, and refuses only a named key id (`?enclave=`) that is not its current boot's.
   */
  get isPool(): boolean {
    return this.#members.length > 1;
  }

  /** The member whose current boot has this key id. */
  byKeyId(keyId: string): PoolMember | undefined {
    return this.#members.find((m) => m.keyId === keyId);
  }

  /**
   * Members to offer a new session, best first: ready ones by fewest in flight (rotating between
   * equals), then the ones not checked yet. Unreachable members are not offered.
   */
  candidates(): PoolMember[] {
    const rank = (m: PoolMember) => (m.state === "ready" ? 0 : 1);
    // Rotated among the members that can be offered (not among all: a member that is down must not
    // send its share of new sessions to the one after it).
    const offered = this.#members.filter((m) => m.state !== "unreachable");
    if (offered.length === 0) return [];
    const start = this.#next++ % offered.length;
    const rotated = [...offered.slice(start), ...offered.slice(0, start)];
    return rotated.sort((a, b) => rank(a) - rank(b) || a.inFlight - b.inFlight);
  }

  /** Numbers a read of the member's document as it starts: what noteDocument and mark are given with its outcome. */
  readStarted(member: PoolMember): number {
    return ++this.#readsOf(member).started;
  }

  /** Whether the outcome of read number `read` is to be taken (then it is): no read started later was. */
  #takes(member: PoolMember, read: number): boolean {
    const reads = this.#readsOf(member);
    if (read < reads.taken) return false;
    reads.taken = read;
    return true;
  }

  #readsOf(member: PoolMember): { started: number; taken: number } {
    const reads = this.#reads.get(member);
    if (reads === undefined)
      throw new RangeError(`enclave pool: expected one of its members, found index ${member.index}`);
    return reads;
  }

  /**
   * Records a document the member served (with 200): its key id (a restart shows as a new one), and
   * the member ready, for the host's reads as for a refresh's (#check): a read taken now drops older
   * ones still under way, so without it a member an older read found unreachable would stay so until
   * the next refresh although it just answered. `read` is the number readStarted gave the read before
   * it was sent; a document from a read older than one already taken is dropped. Returns the
   * document's key id, taken or not: what a caller handing the document on holds it to (the member's
   * may be another read's).
   */
  noteDocument(member: PoolMember, document: string, read: number): string | null {
    const keyId = documentKeyId(document);
    // One change, not two: a member back with a new key id is told as ready with it, never as still
    // unreachable (or unknown) with the new key id.
    if (this.#takes(member, read)) this.#set(member, "ready", null, this.#takeKeyId(member, keyId));
    return keyId;
  }

  /** Whether the key id is new for the member (then taken), without telling onChange. */
  #takeKeyId(member: PoolMember, keyId: string | null): boolean {
    if (keyId === member.keyId) return false;
    member.keyId = keyId;
    return true;
  }

  /**
   * Sets the member's state. With `read` (readStarted's number for the document read that found it),
   * not when a read started later was already taken; without, always (what a request forwarded saw), as
   * a read started and ended now: no document read started before it ends up undoing it.
   */
  mark(member: PoolMember, state: MemberState, reason: MemberReason | null, read?: number): void {
    if (!this.#takes(member, read ?? this.readStarted(member))) return;
    this.#set(member, state, reason);
  }

  /** Sets the member's state; onChange hears of it once, also for a key id taken with it (`keyIdTaken`). */
  #set(member: PoolMember, state: MemberState, reason: MemberReason | null, keyIdTaken = false): void {
    const changed = keyIdTaken || member.state !== state || !sameReason(member.reason, reason);
    member.state = state;
    member.reason = reason;
    if (changed) this.options.onChange?.(member);
  }

  /** Re-reads every member's document once; concurrent calls share one run. */
  refresh(): Promise<void> {
    this.#refreshing ??= Promise.all(this.#members.map((m) => this.#check(m))).then(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #check(member: PoolMember): Promise<void> {
    const read = this.readStarted(member);
    let document: string;
    try {
      const got = await this.options.fetchText(`${member.url}/attestation`);
      // A booting, draining or failed member's 503 names its code (one of NOT_SERVING's, never the
      // answer's text): a restart's boot reads as such, not as a drain.
      if (got.status !== 200) throw new Error(`HTTP ${got.status}${notServingCode(got)}`);
      // The reason is shown to clients (a single enclave's ENCLAVE_UNREACHABLE) and logged: fixed
      // words, never JSON.parse's message, which quotes the answer.
      let answer: { document?: unknown } | null;
      try {
        answer = JSON.parse(got.text) as { document?: unknown } | null;
      } catch {
        throw new Error("its answer is not JSON");
      }
      const value = answer?.document;
      if (typeof value !== "string") throw new Error("no document in its answer");
      document = value;
    } catch (error) {
      this.mark(member, "unreachable", documentReadReason(error), read);
      return;
    }
    this.noteDocument(member, document, read);
  }

  /** Arms the periodic refresh (the host runs the first one itself, before it listens). */
  start(): void {
    this.#timer = setInterval(() => void this.refresh(), this.options.refreshMs ?? 5000);
    this.#timer.unref?.();
  }

  /** Stops the timer; waits for a refresh under way (each read is bounded by the host's timeouts). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#refreshing;
  }

  /**
   * The member with this key id; when none has it now but some member is unread or unreachable,
   * after one refresh (shared with any under way): a member that just came back, or a host that
   * just started, must not send a session to re-attest to the enclave it already has. A single
   * enclave, which has no periodic refresh (host/server.ts starts it for a pool only), is read again
   * for any key id it does not have: it may have restarted since the host last saw its document.
   */
  async findKeyId(keyId: string): Promise<PoolMember | undefined> {
    const found = this.byKeyId(keyId);
    if (found !== undefined && found.state !== "unreachable") return found;
    if (this.isPool && this.#members.every((m) => m.state === "ready")) return found;
    // At most one such refresh per MIN_ON_DEMAND_REFRESH_MS (or the one under way): unknown key ids
    // cost a caller nothing, and must not make the host re-read the whole pool on every request.
    if (this.#refreshing === null) {
      if (performance.now() - this.#onDemandAt < MIN_ON_DEMAND_REFRESH_MS) return found;
      this.#onDemandAt = performance.now();
    }
    await this.refresh();
    return this.byKeyId(keyId);
  }

  /** What /healthz shows: positions, key ids, states and reasons (text), never the members' internal URLs. */
  status(): { index: number; keyId: string | null; state: MemberState; reason: string | null; inFlight: number }[] {
    return this.#members.map(({ index, keyId, state, reason, inFlight }) => ({
      index,
      keyId,
      state,
      reason: reason === null ? null : memberReasonText(reason),
      inFlight,
    }));
  }
}

/** Enclave 503 codes that mean "no new sessions or requests here" (enclave/server.ts), and why. */
export const NOT_SERVING: ReadonlyMap<unknown, string> = new Map([
  ["ENCLAVE_DRAINING", "draining"], // shutting down
  ["ENCLAVE_BOOTING", "booting"], // listening, not yet attested
  ["AUDIT_FAILED", "audit-failed"], // an audit record could not be written: serves nothing until restarted
]);

/**
 * The code of an enclave's error answer (`{"error": {"code": …}}`) when NOT_SERVING has it
 * (`ENCLAVE_BOOTING`), else null: read by the pool's refresh and by a client's read (host/app.ts).
 */
export function notServingCodeOf(text: string): string | null {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === "string" && NOT_SERVING.has(code) ? code : null;
  } catch {
    return null;
  }
}

/** ` CODE` of a 503 answer whose code is NOT_SERVING's (` ENCLAVE_BOOTING`); "" for any other answer. */
function notServingCode(got: { status: number; text: string }): string {
  const code = got.status === 503 ? notServingCodeOf(got.text) : null;
  return code === null ? "" : ` ${code}`;
}

/**
 * Why a read of a member's document failed: the host's error code and its fixed words (shown as
 * `document: ENCLAVE_UNREACHABLE (enclave is unreachable from the host)`), the same whoever read it
 * (the pool's refresh or a client's GET /v1/attestation) when the read got no whole answer; or the
 * pool's own words for an answer its refresh found holding no document (`document: HTTP 503`, with the
 * enclave's code when NOT_SERVING has it: `document: HTTP 503 ENCLAVE_BOOTING`). Not
 * for an answer a client's read got: a member draining, booting or failing its audit is marked with
 * the enclave's word (`draining`, host/app.ts notServing), and any other answer is passed on, the
 * member unmarked. Never the answer's content (the host's messages and the pool's are fixed words,
 * limits and statuses).
 */
export function documentReadReason(error: unknown): MemberReason {
  if (error instanceof HostError) return { step: "document", code: error.code, words: error.message };
  return { step: "document", words: (error as Error).message };
}

/**
 * A reason as text: `step: CODE (words)`, `step: words`, or the words alone (`draining`). `toldCode`
 * is a code the text is told inside of (a refusal of that code): a reason with it reads without it
 * (`document: enclave response was cut`), not telling the code twice.
 */
export function memberReasonText(reason: MemberReason, toldCode?: string): string {
  const what =
    reason.code === undefined || reason.code === toldCode ? reason.words : `${reason.code} (${reason.words})`;
  return reason.step === undefined ? what : `${reason.step}: ${what}`;
}

function sameReason(a: MemberReason | null, b: MemberReason | null): boolean {
  if (a === null || b === null) return a === b;
  return a.step === b.step && a.code === b.code && a.words === b.words;
}
