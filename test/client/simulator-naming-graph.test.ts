/**
 * Naming a refused simulated TDX quote loads no simulator: the SDK's and the key broker's
 * verification (client/policy.ts verifyWithClientPolicy, under the pinned roots) recognises the
 * simulator's Intel root from its bytes (attestation/sim/names.ts), so attestation/sim/anchors.ts
 * (the simulator's roots and its seed) is never loaded into them. Run in a child process with a
 * module hook recording every module loaded, so the whole module graph is seen, not a mock's view.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const REPO = new URL("../../", import.meta.url);

/** Appends the URL of every module loaded to the file named by CLOISTER_TEST_LOADED. */
const HOOKS = `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  appendFileSync(process.env.CLOISTER_TEST_LOADED, url + "\\n");
  return next(url, context);
}`;
const REGISTER = `import { register } from "node:module";
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;

/** A simulated TDX document refused under a policy that does not trust the simulator. */
const SCRIPT = `import nacl from "tweetnacl";
const repo = ${JSON.stringify(REPO.href)};
const { insecureSimulatedIntelHierarchy } = await import(repo + "attestation/sim/intel.ts");
const { simulateTdxQuote } = await import(repo + "attestation/sim/tdx-quote.ts");
const { createAttestationDocument } = await import(repo + "attestation/document.ts");
const { simulatorClientPolicy } = await import(repo + "client/dev-policy.ts");
const { isInsecureSimulatorEvidence, verifyWithClientPolicy } = await import(repo + "client/policy.ts");
await import(repo + "attestation/kbs/broker.ts");
const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
const bytes = (n, f) => Uint8Array.from({ length: n }, (_, i) => (f + i) & 0xff);
const quote = simulateTdxQuote(insecureSimulatedIntelHierarchy(), {
  reportData: bytes(64, 1), mrtd: bytes(48, 0x30), rtmrs: [0, 1, 2, 3].map((n) => bytes(48, n * 48)),
});
const evidence = { type: "tdx", quote: b64(quote) };
const keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
const now = new Date();
const document = await createAttestationDocument({ keys, evidence, manifest: "not.read.jws", maaToken: null, now });
const policy = simulatorClientPolicy({
  tee: "sim-tdx",
  measurement: "30".repeat(48),
  operatorKey: { kty: "OKP", crv: "Ed25519", x: b64(new Uint8Array(32)) },
  modelSha256: "0".repeat(64),
  serviceName: "svc",
});
const pinned = { ...policy, attestation: { ...policy.attestation, trustSimulator: false } };
const code = await verifyWithClientPolicy(document, pinned, { value: new Uint8Array(32), answer: "x" }, now).then(
  () => "accepted",
  (error) => error.code,
);
console.log(JSON.stringify({ code, named: await isInsecureSimulatorEvidence(evidence) }));
`;

function run(loaded: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--import",
        `data:text/javascript,${encodeURIComponent(REGISTER)}`,
        "--input-type=module",
        "--eval",
        SCRIPT,
      ],
      { cwd: fileURLToPath(REPO), env: { ...process.env, CLOISTER_TEST_LOADED: loaded } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("naming a refused simulated TDX quote", () => {
  it("names it SIMULATED_EVIDENCE_NOT_TRUSTED without loading attestation/sim/anchors.ts", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-naming-graph-"));
    try {
      const loaded = join(dir, "loaded.txt");
      const result = await run(loaded);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const urls = (await readFile(loaded, "utf8")).split("\n");
      // The hook saw the production modules (so it would have seen the simulator's)...
      for (const file of ["client/policy.ts", "attestation/kbs/broker.ts", "attestation/sim/names.ts"]) {
        expect(urls).toContain(pathToFileURL(fileURLToPath(new URL(file, REPO))).href);
      }
      // ...and not the simulator's roots.
      expect(urls.filter((url) => url.includes("/attestation/sim/anchors.ts"))).toEqual([]);
      expect(JSON.parse(result.stdout)).toEqual({ code: "SIMULATED_EVIDENCE_NOT_TRUSTED", named: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
