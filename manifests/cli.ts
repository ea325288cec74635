/** `cloister manifest ...`: key generation, signing and verification. Actions import their implementation lazily. */
import type { Command } from "commander";
import { examples } from "../client/cli/help-examples.ts";
import { choiceOption, repeatableOption } from "../client/cli/output.ts";

const ALGS = ["EdDSA", "ES256"] as const;

export function registerManifestCommands(program: Command): void {
  const manifest = program
    .command("manifest")
    .addHelpText(
      "after",
      examples(
        "mkdir -p keys && cloister manifest keygen --out-private keys/operator.private.jwk --out-public keys/operator.public.jwk",
        "cloister manifest check manifest.json",
        "cloister manifest sign --key keys/operator.private.jwk manifest.json manifest.jws",
      ),
    )
    .description(
      "deployment manifests: make an operator signing key, check a manifest against the schema, sign it, verify a signed one",
    );

  manifest
    .command("keygen")
    .addHelpText(
      "after",
      examples(
        "mkdir -p keys && cloister manifest keygen --out-private keys/operator.private.jwk --out-public keys/operator.public.jwk",
        "mkdir -p keys && cloister manifest keygen --alg ES256 --out-private keys/operator.private.jwk --out-public keys/operator.public.jwk",
      ),
    )
    .description("generate an operator manifest-signing key pair (JWK files; the private file is mode 0600)")
    .requiredOption("--out-private <file>", "where to write the private JWK (created with mode 0600)")
    .requiredOption("--out-public <file>", "where to write the public JWK")
    .option("--alg <alg>", "signature algorithm: EdDSA or ES256", choiceOption("--alg", ALGS), "EdDSA")
    .option("--force", "overwrite existing files")
    .option("--json", "print the result as JSON")
    .action(
      async (options: {
        outPrivate: string;
        outPublic: string;
        alg: (typeof ALGS)[number];
        force?: boolean;
        json?: boolean;
      }) => {
        const { keygenCommand } = await import("./cli-impl.ts");
        await keygenCommand(options);
      },
    );

  manifest
    .command("sign")
    .addHelpText("after", examples("cloister manifest sign --key keys/operator.private.jwk manifest.json manifest.jws"))
    .description("check a manifest (JSON) against the schema and sign it as a compact JWS")
    .requiredOption("--key <file>", "the private JWK to sign with")
    .argument("<in>", "manifest JSON file")
    .argument("<out>", "where to write the signed manifest (compact JWS); an existing file is refused")
    .option("--force", "replace <out> if it exists")
    .option("--json", "print the result as JSON")
    .action(async (input: string, output: string, options: { key: string; force?: boolean; json?: boolean }) => {
      const { signCommand } = await import("./cli-impl.ts");
      await signCommand(input, output, options);
    });

  manifest
    .command("verify")
    .addHelpText("after", examples("cloister manifest verify --key keys/operator.public.jwk manifest.jws"))
    .description("verify a signed manifest against trusted public keys and check its schema")
    .requiredOption("--key <file>", "a trusted public JWK (repeat for several)", repeatableOption)
    .argument("<file>", "signed manifest (compact JWS)")
    .option("--json", "print the result as JSON")
    .action(async (file: string, options: { key: string[]; json?: boolean }) => {
      const { verifyCommand } = await import("./cli-impl.ts");
      await verifyCommand(file, options);
    });

  manifest
    .command("check")
    .addHelpText(
      "after",
      examples("cloister manifest check manifests/examples/dev.json", "cloister manifest check manifest.json --json"),
    )
    .description("check an unsigned manifest (JSON) against the schema, listing every violation")
    .argument("<file>", "manifest JSON file")
    .option("--json", "print the result as JSON")
    .action(async (file: string, options: { json?: boolean }) => {
      const { checkCommand } = await import("./cli-impl.ts");
      await checkCommand(file, options);
    });
}
