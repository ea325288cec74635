import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { connect } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { listen } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { enclaveKeyId } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine } from "../enclave/helpers.ts";
import { devPolicy, OK, typeIntoPool } from "./helpers.ts";

const after: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of after.splice(0)) await close();
});

/** One policy for a sim-snp and a sim-tdx member, joined as docs/deploy.md step 5's jq joins them. */
async function jointPolicy() {
  const snp = await devPolicy("sim-snp");
  const tdx = await devPolicy("sim-tdx");
  return {
    ...snp,
    acceptedEvidence: ["sev-snp", "tdx"] as const,
    attestation: { ...snp.attestation, tdx: tdx.attestation.tdx },
  };
}

/** A pool of one sim-snp and one sim-tdx enclave; the host routes to member `state.target`. */
async function pool() {
  const members: { url: string; keyId: string; measurement: string }[] = [];
  for (const tee of ["sim-snp", "sim-tdx"] as const) {
    const enclave = await bootWith(new ScriptedEngine(() => OK), 0, {}, tee);
    const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
    after.push(() => server.close());
    const keyId = Buffer.from(await enclaveKeyId(enclave.publicKeys.sealing)).toString("hex");
    members.push({ url: server.url, keyId, measurement: toHex(await simulatedMeasurement(tee)) });
  }
  const state = { target: 0 };
  const inner = fetchTransport(fetch);
  const transport: Transport = (url, request) =>
    inner(`${members[state.target]?.url}${new URL(url).pathname.replace(/^\/v1\//, "/")}`, request);
  const session = await connect({ url: "http://pool.test", policy: await jointPolicy(), apiKey: "unused", transport });
  return { session, state, members };
}

describe("an interactive chat session moved to another pool member", () => {
  it("says which enclave answers now (TEE, measurement, key id), once per move, never while it stays", async () => {
    const { session, state, members } = await pool();
    const [snp, tdx] = members as [(typeof members)[0], (typeof members)[0]];
    const moved = (tee: string, member: typeof snp) =>
      `cloister: note: the session moved to another enclave, verified against the policy before this turn was sent: ${tee} (SIMULATED), measurement ${member.measurement.slice(0, 16)}…, key id ${member.keyId}\n`;
    // The SNP member stops: the TDX member refuses the session's key (WRONG_ENCLAVE_KEY), and the
    // session re-attests to it; then back.
    const notices = await typeIntoPool(session, state, [
      ["one", 0],
      ["two", 1],
      ["three", 1],
      ["four", 0],
    ]);
    expect(notices).toBe(`${moved("tdx", tdx)}${moved("sev-snp", snp)}`);
    expect(session.enclave.tee).toBe("sev-snp");
  });

  it("says nothing when the session stays on the enclave it started with", async () => {
    const { session, state } = await pool();
    expect(
      await typeIntoPool(session, state, [
        ["one", 0],
        ["two", 0],
      ]),
    ).toBe("");
  });
});
