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
import { insecureSimulatedDefaultMilanCas } from "./default-milan.ts";
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
  // Each part is built on first access: an SNP hierarchy other than the default Milan one costs RSA
  // key generation (about a second per key), which a TDX-only caller should not pay.
  let snp: readonly SnpTrustAnchor[] | undefined;
  let tdx: readonly TdxTrustAnchor[] | undefined;
  return Object.freeze({
    get snp(): readonly SnpTrustAnchor[] {
      snp ??= Object.freeze(
        products.map((product): SnpTrustAnchor => {
          // The default seed's Milan certificates are kept as bytes (default-milan.ts): no RSA key
          // generation for the anchors every simulator-trusting client and key broker builds.
          const h =
            seed === INSECURE_SIMULATOR_DEFAULT_SEED && product === "Milan"
              ? insecureSimulatedDefaultMilanCas()
              : insecureSimulatedAmdHierarchy(seed, product);
          return Object.freeze({
            product,
            ark: parseCertificate(h.ark),
            ask: parseCertificate(h.ask),
            asvk: parseCertificate(h.asvk),
            simulated: true,
          });
        }),
      );
      return snp;
    },
    get tdx(): readonly TdxTrustAnchor[] {
      tdx ??= Object.freeze([
        Object.freeze({ root: parseCertificate(insecureSimulatedIntelHierarchy(seed).root), simulated: true }),
      ]);
      return tdx;
    },
  });
}
