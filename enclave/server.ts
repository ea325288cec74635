/**
 * The enclave's HTTP server, meant to be reachable by the host only (it binds to loopback by
 * default). Routes: GET /attestation, POST /attestation/challenge, POST /sealed (streamed frames),
 * GET /healthz. Errors are mapped to HTTP here and only here; once a sealed request is open,
 * failures travel inside sealed error frames instead.
 */
import { Hono } from "hono";
import { base64url } from "jose";
import { TENANT_HEADER } from "../sealed/envelope.ts";
import { EnclaveError } from "./errors.ts";
import type { Enclave } from "./service.ts";

const MAX_SEALED_BYTES = 16 * 1024 * 1024 + 1024;

function errorJson(code: string, message: string) {
  return { error: { code, message } };
}

export function createEnclaveApp(enclave: Enclave): Hono {
  const app = new Hono();

  app.onError((error, c) => {
    if (error instanceof EnclaveError) {
      // Overload (engine queue full, audit backlog): tell the client when to retry; the host passes it on.
      if (error.status === 503) c.header("Retry-After", "1");
      return c.json(errorJson(error.code, error.message), error.status);
    }
    return c.json(errorJson("INTERNAL", "internal error in the enclave"), 500);
  });
  app.notFound((c) => c.json(errorJson("NOT_FOUND", "no such route"), 404));

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/attestation", (c) => c.json({ document: enclave.document }));

  app.post("/attestation/challenge", async (c) => {
    let nonce: Uint8Array;
    try {
      const body = (await c.req.json()) as { nonce?: unknown };
      if (typeof body.nonce !== "string") throw new Error("nonce");
      nonce = base64url.decode(body.nonce);
    } catch (error) {
      throw new EnclaveError("CHALLENGE_MALFORMED", 400, 'challenge: expected JSON {"nonce": base64url}', {
        cause: error,
      });
    }
    if (nonce.length < 16 || nonce.length > 64) {
      throw new EnclaveError(
        "CHALLENGE_MALFORMED",
        400,
        `challenge nonce: expected 16..64 bytes, found ${nonce.length}`,
      );
    }
    return c.json({ answer: await enclave.answerNonce(nonce) });
  });

  // The host collects audit records here (hashes and decisions only) and stores them; asking for
  // `from` acknowledges every earlier line.
  app.get("/audit", (c) => {
    const from = Number(c.req.query("from") ?? "0");
    if (!Number.isSafeInteger(from) || from < 0) {
      throw new EnclaveError("AUDIT_QUERY_INVALID", 400, "audit: from expected a non-negative integer");
    }
    // `boot` names the enclave boot whose records `from` acknowledges (absent: nothing is acknowledged).
    return c.json(enclave.collectAudit(from, c.req.query("boot") ?? null));
  });

  app.post("/sealed", async (c) => {
    const declared = Number(c.req.header("content-length") ?? "0");
    if (declared > MAX_SEALED_BYTES) {
      throw new EnclaveError("BODY_TOO_LARGE", 413, `sealed request: expected at most ${MAX_SEALED_BYTES} bytes`);
    }
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (body.length > MAX_SEALED_BYTES) {
      throw new EnclaveError("BODY_TOO_LARGE", 413, `sealed request: expected at most ${MAX_SEALED_BYTES} bytes`);
    }
    const controller = new AbortController();
    c.req.raw.signal.addEventListener("abort", () => controller.abort(), { once: true });
    const answer = await enclave.handleSealed(body, c.req.header(TENANT_HEADER) ?? null, controller.signal);
    const iterator = answer.frames[Symbol.asyncIterator]();
    const stream = new ReadableStream<Uint8Array>(
      {
        async pull(streamController) {
          const { done, value } = await iterator.next();
          if (done) streamController.close();
          else streamController.enqueue(value as Uint8Array<ArrayBuffer>);
        },
        async cancel() {
          controller.abort();
          await iterator.return?.(undefined);
        },
      },
      // A frame is sealed only when the writer asks for one: the answer's own producer
      // (Enclave.stream) decodes ahead, holding at most 8 text chunks, and a frame carries every
      // chunk that is waiting then (coalescing). A reader that stops reading stops generation.
      { highWaterMark: 0 },
    );
    return new Response(stream, { status: 200, headers: { "content-type": "application/vnd.cloister.frames" } });
  });

  return app;
}
