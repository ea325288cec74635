/**
 * The enclave service in process, over a scripted engine: what the host learns from a refused
 * sealed request.
 */

import { describe, expect, it } from "vitest";
import { EnclaveError } from "../../enclave/errors.ts";
import { sealRequest } from "../../sealed/index.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 2 } } as const;

describe("enclave sealed answers", () => {
  it("tells the host a stale request's window, not the sealed timestamp's skew (REQUEST_STALE)", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [{ type: "text", text: "a" }, done]));
    for (const offset of [-7_654_321, 7_654_321, -125_000]) {
      const { envelope } = await sealRequest({
        enclavePublicKey: enclave.publicKeys.sealing,
        kind: "complete",
        body: { prompt: "hi" },
        now: Date.now() + offset,
      });
      const error = await rejectionOf(enclave.handleSealed(envelope, null, new AbortController().signal), EnclaveError);
      expect(error).toMatchObject({ code: "REQUEST_STALE", status: 400 });
      const message = error.message;
      // The same message whatever the skew: nothing of the sealed timestamp reaches the host.
      expect(message).toBe("request timestamp: expected within ±120000 ms of enclave time");
    }
  });
});
