/**
 * bench-e2e.ts's floor request (the bare proxy in the host's place, the floor enclave behind it),
 * apart from the benchmark's script so a test can run it on its own.
 */
import { type Agent, request } from "node:http";

/** ttftMs from this stream's own start; first and end: performance.now() at its first text and its end. */
export type StreamResult = { ttftMs: number; first: number; tokens: number; text: string; end: number };

/** One floor request through the bare proxy: TTFT = request sent → first text byte. */
export async function floorStream(agent: Agent, url: string, maxTokens: number, tenant: string): Promise<StreamResult> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ maxTokens, tenant });
    const req = request(url, { method: "POST", agent, headers: { "content-length": Buffer.byteLength(body) } });
    req.on("error", reject);
    req.on("response", (res) => {
      // A refusal (the bare proxy's 502 for an enclave it cannot reach or whose answer it refuses)
      // is no stream: its body, if any, is not read as one (JSON.parse threw in this listener, where
      // no caller caught it, and the bench died with "Unexpected end of JSON input").
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`floor stream: the bare proxy answered HTTP ${res.statusCode}, expected 200`));
        return;
      }
      let ttftMs = Number.NaN;
      let text = "";
      res.on("data", (chunk: Buffer) => {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - start;
        text += chunk.toString("utf8");
      });
      res.on("end", () => {
        const cut = text.lastIndexOf("\n");
        const tokens = tokenCount(text.slice(cut + 1));
        if (tokens === null) {
          reject(new Error("floor stream: the answer's last line: expected JSON with a token count, found none"));
          return;
        }
        resolve({ ttftMs, first: start + ttftMs, tokens, text: text.slice(0, cut), end: performance.now() });
      });
      res.on("error", (error) =>
        reject(new Error(`floor stream: the bare proxy's answer was cut (${error.message})`, { cause: error })),
      );
    });
    req.end(body);
  });
}

/** `tokens` of the floor enclave's last line (`{"tokens":n}`), or null (not JSON, or no count in it). */
function tokenCount(line: string): number | null {
  try {
    const tokens = (JSON.parse(line) as { tokens?: unknown } | null)?.tokens;
    return typeof tokens === "number" && Number.isInteger(tokens) && tokens >= 0 ? tokens : null;
  } catch {
    return null;
  }
}
