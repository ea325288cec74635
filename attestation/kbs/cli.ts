/**
 * `cloister kbs …` (the key broker) and `cloister model seal`. Actions import their implementation
 * lazily.
 */
import type { Command } from "commander";
import { examples } from "../../client/cli/help-examples.ts";
import { intOption } from "../../client/cli/output.ts";
import { modelCommand } from "../../models/cli.ts";
import { KEY_ID_RULE } from "../../models/key-id.ts";

export const DEFAULT_KBS_PORT = 8790;

export interface KbsServeOptions {
  config: string;
  listen: string;
  port: number;
  allowSimulatorOnNetwork?: boolean;
}

export function registerKbsCommands(program: Command): void {
  const kbs = program
    .command("kbs")
    .addHelpText(
      "after",
      examples(
        "mkdir -p keys && cloister kbs keygen --key-id llama-8b-v1 --out keys/llama-8b-v1.jwk",
        "cloister kbs check --config kbs.json",
        "cloister kbs serve --config kbs.json --listen 0.0.0.0 --port 8790",
      ),
    )
    .description(
      "the key broker: holds model keys, releases one only to an enclave whose attestation passes its policy",
    );

  kbs
    .command("serve")
    .addHelpText(
      "after",
      examples(
        "cloister kbs serve --config kbs.json",
        "cloister kbs serve --config kbs.json --listen 0.0.0.0 --port 8790",
      ),
    )
    .description("serve the key broker API (POST /v1/kbs/challenge, POST /v1/kbs/release, GET /healthz)")
    .requiredOption(
      "--config <file>",
      "broker configuration: {version: 1, keys: [{keyFile, policy}], limits?: {challengesPerMinute, releasesPerMinute, maxClients}}; each policy a client policy (as cloister policy init writes); all read once, at start: restart the broker after changing them; none writable by group or others, key files closed to them (chmod 600) and not symbolic links (a configuration's or policy's link is followed, its file checked), all owned by the broker's user or root",
    )
    .option("--listen <address>", "address to bind", "127.0.0.1")
    .option("--port <n>", "port to listen on (0 = any free port)", intOption("--port", 0, 65535), DEFAULT_KBS_PORT)
    .option(
      "--allow-simulator-on-network",
      "serve keys whose release policy trusts the INSECURE simulator on an address other than loopback (development across machines only: anyone who reaches the broker can forge such evidence)",
    )
    .action(async (options: KbsServeOptions) => {
      const { runKbsServe } = await import("./cli-impl.ts");
      await runKbsServe(options);
    });

  kbs
    .command("keygen")
    .addHelpText(
      "after",
      examples("mkdir -p keys && cloister kbs keygen --key-id llama-8b-v1 --out keys/llama-8b-v1.jwk"),
    )
    .description("make a new random model key (a JWK with kty oct, mode 0600); refuses to overwrite a file")
    .requiredOption("--key-id <id>", `the key's id, as the manifest's model.keyId will name it (${KEY_ID_RULE})`)
    .requiredOption("--out <file>", "where to write the key")
    .action(async (options: { keyId: string; out: string }) => {
      const { runKbsKeygen } = await import("./cli-impl.ts");
      await runKbsKeygen(options);
    });

  kbs
    .command("check")
    .addHelpText(
      "after",
      examples("cloister kbs check --config kbs.json", "cloister kbs check --config kbs.json --json"),
    )
    .description(
      "load a broker configuration and list its keys and release policies (no key material); warns of a policy that releases a key to more than a known image. It reads the files afresh: a running kbs serve keeps what it read at start until restarted",
    )
    .requiredOption("--config <file>", "broker configuration (as kbs serve takes)")
    .option("--json", "print the summary as JSON")
    .action(async (options: { config: string; json?: boolean }) => {
      const { runKbsCheck } = await import("./cli-impl.ts");
      await runKbsCheck(options);
    });

  modelCommand(program)
    .command("seal")
    .addHelpText("after", examples("cloister model seal --key keys/llama-8b-v1.jwk llama-8b.gguf llama-8b.gguf.sealed"))
    .description(
      "encrypt a GGUF model at rest under a model key; prints the manifest's model fields for the sealed file",
    )
    .requiredOption("--key <file>", "model key (cloister kbs keygen)")
    .argument("<in>", "GGUF model file")
    .argument("<out>", "sealed file to write")
    .option("--json", "print the result as JSON")
    .option(
      "--force",
      "replace <out> if it exists as a file (its digest, pinned by a manifest, changes); a directory, FIFO, socket or device there is refused",
    )
    .action(async (input: string, output: string, options: { key: string; json?: boolean; force?: boolean }) => {
      const { runModelSeal } = await import("./cli-impl.ts");
      await runModelSeal(input, output, options);
    });
}
