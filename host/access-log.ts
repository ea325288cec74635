/**
 * The host's access log: sizes and timings only. It never records bodies, headers, API keys,
 * nonces or anything else a request carries; the key is identified by its configured id.
 */
export interface AccessLogEntry {
  readonly time: string;
  readonly method: string;
  /** The route's path (its pattern, `/x/:id`); "(no route)" for a path no route has (what a client writes there is not kept). */
  readonly path: string;
  readonly status: number;
  readonly keyId: string | null;
  /**
   * The enclave a sealed request was forwarded to: its pool index (as the host's `pool: enclave N`
   * lines and /healthz number it; 0 for a single enclave); null for any other request.
   */
  readonly member: number | null;
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** Time until the response headers were sent. */
  readonly headersMs: number;
  /** Time until the last response byte (streams) or the response (others). */
  readonly durationMs: number;
  readonly outcome: "ok" | "error" | "aborted";
}

export type AccessLogSink = (entry: AccessLogEntry) => void;

/**
 * One JSON line per request on the given stream (stderr by default). Plain JSON.stringify, not
 * stringifyJsonVisibly: no field holds text a client chose that could carry an invisible character
 * (one a terminal acts on, or shows as other text) past it. `method` is an HTTP token (node's
 * parser reads only its list of methods, and a fetch Request takes only tokens: visible ASCII);
 * `path` is a route's own pattern or a fixed word, never the client's path; `keyId` is a configured
 * id (TENANT_LABEL_PATTERN: `[A-Za-z0-9_.-]`); `member` a pool member's index (the host's own
 * numbering, never the key id the client's envelope names) or null; `time` is an ISO date,
 * `outcome` one of three words, the rest numbers. A field added with client text must escape it
 * (as host/run.ts's ready line does).
 */
export function jsonLinesAccessLog(write: (line: string) => void = (l) => process.stderr.write(l)): AccessLogSink {
  return (entry) => write(`${JSON.stringify({ type: "access", ...entry })}\n`);
}
