/**
 * End to end with a simulated Intel TDX enclave (a TDX v4 quote under the simulated Intel
 * hierarchy) as real processes on 127.0.0.1: verified, then answered, sealed end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../client/sdk.ts";
import { bootDeployment, type E2eDeployment } from "./helpers/deployment.ts";
import { drain } from "./helpers/stream.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";

let deployment: E2eDeployment;

beforeAll(async () => {
  deployment = await bootDeployment("sim-tdx");
});

afterAll(async () => {
  await deployment?.stop();
});

describe("e2e sim-tdx deployment", () => {
  it("verifies as TDX (simulated, the policy's MRTD) and answers with the model's greedy text", async () => {
    const policy = deployment.files.policy;
    const session = await connect({ url: deployment.running.hostUrl, policy, apiKey: deployment.files.apiKey });
    expect(session.enclave.tee).toBe("tdx");
    expect(session.enclave.simulated).toBe(true);
    expect(policy.attestation.snp).toBeNull();
    const mrtd = policy.attestation.tdx?.mrtd;
    expect(Array.isArray(mrtd) ? mrtd : []).toEqual([session.enclave.measurement]);

    const result = await drain(session.chat([{ role: "user", content: "What does the enclave do?" }]));
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    expect(result.done?.finishReason).toBe("stop");
    expect(result.done?.usage.completionTokens).toBe(19);

    // An SNP-only client refuses this enclave, before sending anything.
    const snpOnly = { ...policy, acceptedEvidence: ["sev-snp" as const] };
    await expect(
      connect({ url: deployment.running.hostUrl, policy: snpOnly, apiKey: deployment.files.apiKey }),
    ).rejects.toMatchObject({
      kind: "attestation",
      code: "TEE_NOT_ACCEPTED",
    });
  });
});
