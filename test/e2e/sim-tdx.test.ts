/**
 * End to end with a simulated Intel TDX enclave (a TDX v4 quote under the simulated Intel
 * hierarchy) as real processes on 127.0.0.1: verified, then answered, sealed end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import {
  SIMULATED_TCB_EVALUATION_DATA_NUMBER,
  SIMULATED_TD_ATTRIBUTES,
  SIMULATED_TEE_TCB_SVN,
  SIMULATED_XFAM,
  simulatedMrSeam,
} from "../../attestation/sim/index.ts";
import { simulatorAttestationPolicy } from "../../client/dev-policy.ts";
import { policyRisks } from "../../client/policy.ts";
import { connect } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
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

    // The collateral served with the document was checked: Intel-format TCB info, QE identity and
    // CRLs under the simulated root, as a policy requiring UpToDate of the simulator's TCB
    // evaluation demands. What else the simulated TD reports is pinned as it reports it.
    expect(policy.attestation.tdx).toMatchObject({
      acceptedTcbStatuses: {
        statuses: ["UpToDate"],
        minimumTcbEvaluationDataNumber: SIMULATED_TCB_EVALUATION_DATA_NUMBER,
      },
      tdAttributes: { allowed: [toHex(SIMULATED_TD_ATTRIBUTES)] },
      xfam: { allowed: [toHex(SIMULATED_XFAM)] },
      mrseam: [toHex(simulatedMrSeam())],
      minimumTeeTcbSvn: toHex(SIMULATED_TEE_TCB_SVN),
    });
    expect(session.enclave.details).toMatchObject({ tcbStatus: "UpToDate", revocationChecked: true });
    expect(policyRisks(policy, "is sent your prompts")).toEqual([
      "trusts the INSECURE simulator: anyone can forge its evidence",
    ]);

    // An SNP-only client (its SNP section set, the TDX one left but not accepted) refuses this
    // enclave, before sending anything.
    const snpOnly = {
      ...policy,
      acceptedEvidence: ["sev-snp" as const],
      attestation: { ...policy.attestation, snp: simulatorAttestationPolicy("sim-snp", "ab".repeat(48)).snp },
    };
    await expect(
      connect({ url: deployment.running.hostUrl, policy: snpOnly, apiKey: deployment.files.apiKey }),
    ).rejects.toMatchObject({
      kind: "attestation",
      code: "TEE_NOT_ACCEPTED",
    });
  });

  it("refuses the enclave when the host withholds or alters its collateral, sending nothing", async () => {
    const policy = deployment.files.policy;
    const sent: string[] = [];
    /** A host that rewrites the collateral of the attestation answer. */
    const rewriting =
      (rewrite: (collateral: { tdx: Record<string, unknown> }) => unknown): Transport =>
      async (url, request) => {
        sent.push(new URL(url).pathname);
        const response = await fetchTransport(fetch)(url, request);
        if (!url.endsWith("/v1/attestation")) return response;
        const body = JSON.parse(await response.text(1 << 22)) as {
          document: string;
          collateral?: { tdx: Record<string, unknown> };
        };
        expect(body.collateral?.tdx).toBeDefined();
        const changed = JSON.stringify({ document: body.document, collateral: rewrite(body.collateral as never) });
        return { ...response, body: [new TextEncoder().encode(changed)], text: async () => changed };
      };
    const attempt = (transport: Transport) =>
      connect({ url: deployment.running.hostUrl, policy, apiKey: deployment.files.apiKey, transport });

    await expect(attempt(rewriting(() => undefined))).rejects.toMatchObject({
      kind: "attestation",
      code: "TDX_TCB_STATUS_NOT_ACCEPTED",
    });
    // One byte of the signed TCB info changed: its signature no longer verifies.
    await expect(
      attempt(
        rewriting((c) => ({
          tdx: {
            ...c.tdx,
            tcbInfo: String(c.tdx.tcbInfo).replace('"tcbEvaluationDataNumber":', '"tcbEvaluationDataNumber":1'),
          },
        })),
      ),
    ).rejects.toMatchObject({ kind: "attestation", stage: "verify" });
    // Without the CRLs there is no revocation check: refused as malformed, not verified without it.
    await expect(attempt(rewriting((c) => ({ tdx: { ...c.tdx, crls: [] } })))).rejects.toMatchObject({
      kind: "attestation",
      code: "COLLATERAL_MALFORMED",
    });
    expect(sent).not.toContain("/v1/sealed");
  });
});
