/** `cloister` sub-commands of the enclave/ party. Actions import their implementation lazily. */
import type { Command } from "commander";
import { SNP_PRODUCTS, type SnpProduct } from "../attestation/snp/parse.ts";
import { examples } from "../client/cli/help-examples.ts";
import { choiceOption, intOption, repeatableOption } from "../client/cli/output.ts";
import { registerAuditCommands } from "./audit-cli.ts";
import { DEFAULT_FRAME_INTERVAL_MS } from "./frame-interval.ts";
import { DEFAULT_SHUTDOWN_GRACE_MS } from "./http.ts";

export const ENCLAVE_TEE_CHOICES = ["auto", "snp", "tdx", "azure-snp", "azure-tdx", "sim-snp", "sim-tdx"] as const;

export interface EnclaveCommandOptions {
  manifest: string;
  operatorKey: string[];
  model: string;
  tee: (typeof ENCLAVE_TEE_CHOICES)[number];
  listen: string;
  port: number;
  frameIntervalMs: number;
  kbsUrl?: string;
  tdxCollateral?: string;
  kdsUrl?: string;
  snpProduct?: SnpProduct;
  shutdownGraceMs: number;
}

export function registerEnclaveCommands(program: Command): void {
  registerAuditCommands(program);
  program
    .command("enclave")
    .addHelpText(
      "after",
      examples(
        "cloister enclave --manifest manifest.jws --operator-key keys/operator.public.jwk --model llama-8b.gguf.sealed --kbs-url http://kbs.example:8790 --tee auto --listen 10.0.0.11",
        "cloister enclave --manifest manifest.jws --operator-key keys/operator.public.jwk --model tiny.gguf --tee sim-snp --port 8443   # simulator, loopback",
      ),
    )
    .description("run the enclave inside a confidential VM (or the simulator): boot, attest, answer sealed requests")
    .requiredOption("--manifest <file>", "operator-signed deployment manifest (compact JWS)")
    .requiredOption(
      "--operator-key <file>",
      "operator public key (JWK) trusted to sign the manifest; repeatable",
      repeatableOption,
    )
    .requiredOption(
      "--model <file>",
      "GGUF model file, or the sealed file cloister model seal wrote (with --kbs-url); its SHA-256 and size must equal the manifest's model",
    )
    .option(
      "--tee <kind>",
      `evidence source: ${ENCLAVE_TEE_CHOICES.join(", ")}; auto detects real hardware and never picks the simulator`,
      choiceOption("--tee", ENCLAVE_TEE_CHOICES),
      "auto",
    )
    .option("--listen <address>", "address to bind (the host must reach it; nobody else should)", "127.0.0.1")
    .option("--port <n>", "port to listen on (0 = any free port)", intOption("--port", 0, 65535), 8443)
    .option(
      "--frame-interval-ms <n>",
      "least time between two answer frames after the first; text decoded meanwhile goes out together (0 = a frame per chunk)",
      intOption("--frame-interval-ms", 0, 1000),
      DEFAULT_FRAME_INTERVAL_MS,
    )
    .option(
      "--kbs-url <url>",
      "key broker that releases the model key to this attested boot (required when the manifest's model is sealed at rest)",
    )
    .option(
      "--tdx-collateral <dir>",
      "with --tee tdx: Intel PCS collateral (tcbinfo-*.json, qeidentity-*.json, their issuer-chain .pem files, CRLs as *.der) served next to the document so clients can check the TCB status; read again every 5 minutes",
    )
    .option(
      "--kds-url <url>",
      "with --tee snp: an AMD KDS cache or proxy (serving /vcek/v1/...) to fetch the VCEK from when the host's certificate table has none, as on GCP; default $CLOISTER_KDS_URL, else https://kdsintf.amd.com",
    )
    .option(
      "--snp-product <name>",
      `with --tee snp: the processor (${SNP_PRODUCTS.join(", ")}) to ask AMD KDS about when the report cannot tell it (version 2 reports)`,
      choiceOption("--snp-product", SNP_PRODUCTS),
    )
    .option(
      "--shutdown-grace-ms <n>",
      "on SIGTERM/SIGINT, stop taking requests and let answers under way finish for up to this long (a second signal stops at once)",
      intOption("--shutdown-grace-ms", 0, 600_000),
      DEFAULT_SHUTDOWN_GRACE_MS,
    )
    .action(async (options: EnclaveCommandOptions) => {
      const { runEnclaveCommand } = await import("./run.ts");
      await runEnclaveCommand(options);
    });
}
