/**
 * SECURITY.md and docs/protocol.md, "What the host sees": after the first text, an enclave started
 * without `--frame-interval-ms` sends at most one data frame per 20 ms, carrying everything decoded
 * meanwhile, so the host sees the answer's length per interval rather than each chunk's size. The
 * other stream tests boot with an interval of their own (test/enclave/helpers.ts bootWith: 0 unless
 * given), so none of them failed with a default of 0. Shown by the wait the stream sets for the
 * second text, on a clock held still (performance.now) so that wait is the whole interval, not what
 * a slow machine leaves of it.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { InferenceEngine } from "../../enclave/engine.ts";
import { Enclave } from "../../enclave/service.ts";
import { devManifest } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { TINY_MODEL_SHA256 } from "../../models/tiny.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { watchTimeouts } from "../helpers/held-timers.ts";
import { ScriptedEngine, usage } from "./helpers.ts";

let releaseB = (): void => {};
let releaseEnd = (): void => {};
const bCame = new Promise((resolve) => (releaseB = () => resolve(undefined)));
const endCame = new Promise((resolve) => (releaseEnd = () => resolve(undefined)));
const engine = new ScriptedEngine(() => [
  { type: "text", text: "a" },
  { until: bCame },
  { type: "text", text: "b" },
  { until: endCame },
  { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 2 } },
]);
let enclave: Enclave;

beforeAll(async () => {
  const { privateJwk, publicJwk } = await generateManifestSigningKey("EdDSA");
  enclave = await Enclave.boot({
    manifestJws: await signManifest(devManifest({ model: { sha256: TINY_MODEL_SHA256 } }), privateJwk),
    operatorKeys: [publicJwk],
    modelPath: "unused (engine injected)",
    tee: "sim-snp",
    engine: engine as unknown as InferenceEngine,
    // no frameIntervalMs: the default is what this file checks
  });
});
afterAll(async () => {
  await enclave?.close();
});

describe("enclave answer stream: the default frame interval", () => {
  it("holds the second text back 20 ms after the first frame, until the end cuts the wait short", async () => {
    const { envelope, context } = await sealRequest({
      enclavePublicKey: enclave.publicKeys.sealing,
      kind: "complete",
      body: { prompt: "hello" },
    });
    /** Each timer of 1..1000 ms set while the answer streams (the frame interval's waits): its delay. */
    const waits: number[] = [];
    let onWait = (): void => {};
    const waitSet = new Promise<void>((resolve) => (onWait = resolve));
    const clock = vi.spyOn(performance, "now").mockReturnValue(1_000_000);
    const spy = watchTimeouts(
      (ms) => {
        if (ms === undefined || ms <= 0 || ms > 1000) return undefined;
        waits.push(ms);
        onWait();
        return ms;
      },
      () => {},
    );
    const frames: Uint8Array[] = [];
    try {
      const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
      const iterator = answer.frames[Symbol.asyncIterator]();
      frames.push((await iterator.next()).value as Uint8Array);
      // The second frame is asked for before "b" exists; "b" then waits out the interval, or (with
      // no interval) goes out alone at once, which ends the race below first.
      const second = iterator.next();
      releaseB();
      const first = await Promise.race([waitSet.then(() => "wait" as const), second.then(() => "frame" as const)]);
      releaseEnd();
      expect(first).toBe("wait");
      for (let result = await second; result.done !== true; result = await iterator.next()) {
        frames.push(result.value);
      }
    } finally {
      spy.restore();
      clock.mockRestore();
    }
    expect(waits[0]).toBe(20);
    const events: ResponseEvent[] = [];
    async function* replay() {
      yield* frames;
    }
    for await (const event of openResponseFrames(context, replay())) events.push(event);
    expect(events.map((e) => (e.type === "data" ? e.text : e.type))).toEqual(["a", "b", "final"]);
  });
});
