/**
 * The pinned Intel SGX Root CA: the trust anchor of every real TDX (and SGX) PCK certificate chain
 * and of Intel's TCB-info / QE-identity signing chains.
 *
 * Provenance: byte-for-byte copy of /work/shared/fixtures/attestation/intel-roots/intel-sgx-root-ca.pem,
 * itself google/go-tdx-guest `verify/trusted_root.pem` @91f9a52f (Apache-2.0); the same certificate
 * is the third certificate of every real PCK chain in the fixtures (its CRL distribution point is
 * https://certificates.trustedservices.intel.com/IntelSGXRootCA.der).
 * Subject C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX Root CA; self-signed ECDSA P-256;
 * valid 2018-05-21T10:45:10Z .. 2049-12-31T23:59:59Z.
 * SHA-256 of the DER: 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3
 * (checked by test/attestation/tdx-roots.test.ts against the fixture file and this constant).
 *
 * A trust anchor says whether it is real or simulated. Verification is generic over anchors; a result
 * verified under a `simulated: true` anchor is reported as simulated (see attestation/tdx/verify.ts).
 */
import { type Certificate, parsePemCertificates } from "../x509.ts";

export interface TdxTrustAnchor {
  readonly root: Certificate;
  /** True for the simulator's fake hierarchy: evidence verified under it is never real hardware. */
  readonly simulated: boolean;
}

export const INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

export const INTEL_SGX_ROOT_CA_PEM = `-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----`;

/** The real Intel roots (parsed once at module load). */
export const INTEL_ROOTS: readonly TdxTrustAnchor[] = Object.freeze([
  Object.freeze({ root: parsePemCertificates(INTEL_SGX_ROOT_CA_PEM)[0] as Certificate, simulated: false }),
]);
