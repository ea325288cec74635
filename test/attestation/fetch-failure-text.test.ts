/** describeFetchFailure: the words of a failed fetch that a message may repeat, never a quoted URL. */
import { describe, expect, it } from "vitest";
import { describeFetchFailure } from "../../attestation/fetch-failure-text.ts";

const NOT_SHOWN = "TypeError, its message not shown (it may quote a URL)";

describe("describeFetchFailure", () => {
  it("shows the cause's code, else the cause's message, else the error's own message", () => {
    const coded = new TypeError("fetch failed", {
      cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }),
    });
    expect(describeFetchFailure(coded)).toBe("ECONNREFUSED");
    expect(describeFetchFailure(new TypeError("fetch failed", { cause: new Error("bad port") }))).toBe("bad port");
    expect(describeFetchFailure(new TypeError("fetch failed"))).toBe("fetch failed");
  });

  it("shows only the error's name for any message that may quote a URL, node's own among them", async () => {
    const real = await fetch("http:/op:hunter2@127.0.0.1:1/x").catch((error: unknown) => error);
    expect((real as Error).message).toContain("hunter2");
    expect(describeFetchFailure(real)).toBe(NOT_SHOWN);
    for (const message of [
      "Request cannot be constructed from a URL that includes credentials: http:/op:hunter2@127.0.0.1:1/x",
      "Request cannot be constructed from a URL that includes credentials: http:\\\\op:hunter2@127.0.0.1:1/x",
      "Failed to parse URL from http://[bad/x",
      "Failed to parse URL from http:/[bad/x",
      "Failed to parse URL from [bad?token=hunter2",
      "Failed to parse URL from [bad#hunter2",
      "redirected to op:hunter2@127.0.0.1",
    ]) {
      expect(describeFetchFailure(new TypeError(message)), message).toBe(NOT_SHOWN);
      // Nor under a cause whose message quotes it: then the error's own message, which does not.
      const under = new TypeError("fetch failed", { cause: new Error(message) });
      expect(describeFetchFailure(under), message).toBe("fetch failed");
    }
  });

  it("says Error for a thrown value with no usable name or message", () => {
    expect(describeFetchFailure(null)).toBe("Error, its message not shown (it may quote a URL)");
    expect(describeFetchFailure({ message: "" })).toBe("Error, its message not shown (it may quote a URL)");
  });
});
