/**
 * Trust anchors of the INSECURE simulator, marked `simulated: true`. Verification accepts simulated
 * evidence only when these anchors are passed explicitly, every verified result then says
 * `simulated`, and appraisal rejects it unless the policy says `trustSimulator: true`.
 */
import type { SnpTrustAnchor } from "../roots/amd.ts";
import type { TdxTrustAnchor } from "../roots/intel.ts";
import type { SnpProduct } from "../snp/parse.ts";
import { parseCertificate } from "../x509.ts";
import { INSECURE_SIMULATOR_DEFAULT_SEED, insecureSimulatedAmdHierarchy } from "./amd.ts";
import { insecureSimulatedIntelHierarchy } from "./intel.ts";

export interface InsecureSimulatorAnchors {
  readonly snp: readonly SnpTrustAnchor[];
  readonly tdx: readonly TdxTrustAnchor[];
}

/**
 * The simulator's anchors for `seed` (default INSECURE_SIMULATOR_DEFAULT_SEED): one SNP anchor per
 * product in `products` (default Milan, the product the simulator reports) and the Intel root.
 */
export function insecureSimulatorAnchors(
  seed: string = INSECURE_SIMULATOR_DEFAULT_SEED,
  products: readonly SnpProduct[] = ["Milan"],
): InsecureSimulatorAnchors {
  const snp = products.map((product): SnpTrustAnchor => {
    const h = insecureSimulatedAmdHierarchy(seed, product);
    return Object.freeze({
      product,
      ark: parseCertificate(h.ark),
      ask: parseCertificate(h.ask),
      asvk: parseCertificate(h.asvk),
      simulated: true,
    });
  });
  const intel = insecureSimulatedIntelHierarchy(seed);
  const tdx: TdxTrustAnchor[] = [Object.freeze({ root: parseCertificate(intel.root), simulated: true })];
  return Object.freeze({ snp: Object.freeze(snp), tdx: Object.freeze(tdx) });
}
