/**
 * The name every simulated certificate carries (in its subject and issuer organization). Alone in
 * this module, with no key or seed, so code that must not carry the simulator (a browser build
 * without it) can still recognise simulated evidence in order to name it in a refusal.
 */
export const INSECURE_SIMULATOR_ORGANIZATION = "Cloister Insecure Simulator";

/** Whether a certificate name (`O=…,CN=…` as parsed) names the simulator's organization. */
export function namesInsecureSimulator(name: string): boolean {
  return name.split(",").includes(`O=${INSECURE_SIMULATOR_ORGANIZATION}`);
}
