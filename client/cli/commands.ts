/** `cloister` sub-commands of the client party. Actions import their implementation lazily. */
import { type Command, InvalidArgumentError, Option } from "commander";
import { ENCLAVE_KEY_ID_HEX } from "../../sealed/envelope.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";
import { examples } from "./help-examples.ts";
import { choiceOption, intOption, repeatableOption } from "./output.ts";
import { visibleOnOneLine } from "./terminal-text.ts";

export const API_KEY_FILE_HELP =
  "file holding the API key; it wins over CLOISTER_API_KEY, used when this option is not given; default .cloister/api-key (cloister up's local key), for a loopback --url only (127.0.0.0/8, [::1] or localhost)";

/** `--enclave` of `attest` and `audit checkpoint`: connect's `enclaveKeyId`. */
export const ENCLAVE_KEY_ID_HELP =
  "verify this enclave of a pool only, by its key id (32 lower-case hex digits, not the 16 of a boot id that names its audit log: cloister attest prints it, the host logs each member's, its /healthz lists them); a document of another enclave is refused, and the key id of a member stopped or restarted (it boots with a new one) by the host (WRONG_ENCLAVE_KEY)";

/** Commander parser of `--enclave`: an enclave key id as the host routes by it (lower-case hex). */
export function enclaveKeyIdOption(value: string): string {
  if (!ENCLAVE_KEY_ID_HEX.test(value)) {
    const bootId = /^[0-9a-f]{16}$/.test(value) ? " (a boot id, as an audit log's file name has: not a key id)" : "";
    throw new InvalidArgumentError(
      `--enclave expects an enclave key id of 32 lower-case hex digits, found "${visibleOnOneLine(value)}"${bootId}; take it from cloister attest (key id), the host's log (pool: enclave N is ready (key id …)) or its /healthz (enclaves)`,
    );
  }
  return value;
}

const POLICY_INIT_EXAMPLE =
  "cloister policy init --url https://cloister.example --operator-key keys/operator.public.jwk --api-key-file my-api-key --out policy.json";
const RECEIPT_VERIFY_EXAMPLE =
  'cloister receipt verify --receipt answer.json --key "$(jq -r .signingKey answer.json)" --document document.jws --answer-file answer.txt   # answer.txt: jq -j .text answer.json; document.jws: attest --document-out';

export const SIMULATED_TEES = ["sim-snp", "sim-tdx"] as const;
/** Where `cloister web` serves its page by default, and so the origin `cloister up` lets call the host. */
export const DEFAULT_WEB_PORT = 8788;
export const DEFAULT_WEB_ORIGIN = `http://127.0.0.1:${DEFAULT_WEB_PORT}`;
const DEFAULT_CORS_ORIGINS: string[] = [DEFAULT_WEB_ORIGIN];
/** Where `cloister proxy` serves its API by default (its --port). */
export const DEFAULT_PROXY_PORT = 8787;
/** Where `cloister proxy` keeps (and first makes) its token by default: in the working directory. */
export const LOCAL_PROXY_TOKEN_FILE = ".cloister/proxy-token";

export interface UpOptions {
  hostPort: number;
  enclavePort: number;
  tee: (typeof SIMULATED_TEES)[number];
  dir: string;
  threads: number;
  /** `cloister up` only: origins whose pages may call the host from a browser. */
  corsOrigin?: string[];
  /** Seal the model at rest and run a key broker (`--no-sealed-model`: a plain model file). */
  sealedModel: boolean;
  kbsPort: number;
  /** Enclave processes; more than one form a pool the host routes by enclave key id. */
  enclaves: number;
}

export interface WebCommandOptions {
  url: string;
  policy: string;
  port: number;
  maxTokens: number;
}

export interface ClientConnectionOptions {
  url: string;
  policy: string;
  apiKeyFile?: string;
  json?: boolean;
  /** `--enclave` (attest, audit checkpoint): the pool member to verify, by key id. */
  enclave?: string;
}

export function registerClientCommands(program: Command): void {
  const deploymentOptions = (command: Command, defaults: { host: number; enclave: number; kbs: number }) =>
    command
      .option("--host-port <n>", "host port (0 = any free port)", intOption("--host-port", 0, 65535), defaults.host)
      .option(
        "--enclave-port <n>",
        "enclave port (0 = any free port)",
        intOption("--enclave-port", 0, 65535),
        defaults.enclave,
      )
      .option("--tee <kind>", "simulated TEE: sim-snp or sim-tdx", choiceOption("--tee", SIMULATED_TEES), "sim-snp")
      .option(
        "--dir <path>",
        "where keys, model, manifest, API key and policy are kept (each directory made gets a .gitignore of *)",
        ".cloister",
      )
      .option("--threads <n>", "CPU threads for inference", intOption("--threads", 1, 256), 2)
      .option(
        "--no-sealed-model",
        "keep the model file in plain text (default: sealed at rest, its key released by a key broker to the attested enclave only)",
      )
      .option("--kbs-port <n>", "key broker port (0 = any free port)", intOption("--kbs-port", 0, 65535), defaults.kbs)
      .option(
        "--enclaves <n>",
        "enclave processes behind the host (more than one: a pool, on consecutive ports from --enclave-port; with --enclave-port 0, any free ports)",
        intOption("--enclaves", 1, 16),
        1,
      );

  deploymentOptions(
    program
      .command("up")
      .description(
        "start a key broker, a simulated enclave and an untrusted host on loopback, write the matching client policy, run until interrupted (--no-sealed-model: no key broker)",
      ),
    { host: 8080, enclave: 8443, kbs: 8790 },
  )
    .addHelpText(
      "after",
      examples(
        "cloister up                    # key broker + enclave + host on 127.0.0.1; writes .cloister/policy.json",
        "cloister up --enclaves 2       # two simulated enclaves behind one host",
        "cloister up --host-port 9080 --enclave-port 9443 --kbs-port 9790",
      ),
    )
    .addOption(
      new Option("--cors-origin <origin>", "let pages from this origin call the host from a browser (repeatable)")
        .argParser((value: string, previous: string[]) =>
          previous === DEFAULT_CORS_ORIGINS ? [value] : [...previous, value],
        )
        .default(DEFAULT_CORS_ORIGINS, `${DEFAULT_WEB_ORIGIN}, where cloister web serves its page`),
    )
    .action(async (options: UpOptions) => {
      const { runUp } = await import("./run-up.ts");
      await runUp(options);
    });

  deploymentOptions(
    program
      .command("demo")
      .description(
        "boot a simulated deployment, verify it, ask one question, print the answer and what was verified, shut down",
      ),
    { host: 0, enclave: 0, kbs: 0 },
  )
    .addHelpText(
      "after",
      examples("cloister demo", 'cloister demo --tee sim-tdx --prompt "What is sealed, and to whom?"'),
    )
    .option("--prompt <text>", "the question to ask", "What does the enclave do?")
    .action(async (options: UpOptions & { prompt: string }) => {
      const { runDemo } = await import("./run-up.ts");
      await runDemo(options);
    });

  const connection = (command: Command) =>
    command
      .requiredOption("--url <url>", "the host's URL (printed by cloister up)")
      .requiredOption("--policy <file>", "client policy file (cloister up writes .cloister/policy.json)")
      .option("--api-key-file <file>", API_KEY_FILE_HELP);

  connection(program.command("attest").description("verify the enclave behind a host and print what was verified"))
    .option("--json", "print the result as JSON")
    .option("--enclave <key-id>", ENCLAVE_KEY_ID_HELP, enclaveKeyIdOption)
    .option(
      "--document-out <file>",
      "save the verified attestation document to this new file (for cloister receipt verify --document)",
    )
    .option(
      "--evidence-out <dir>",
      "save the verified document's TEE evidence in this existing directory, as the files cloister verify-evidence takes: report.bin and cert.der (sev-snp), quote.bin (tdx) and, when the deployment served it, the TDX collateral it was verified with in collateral/ (for --collateral), evidence.json (azure-*) and td-quote.bin (azure-tdx's TD quote); prints the files and the verify-evidence command",
    )
    .option(
      "--force",
      "with --document-out or --evidence-out: replace the files if they exist (--evidence-out: and remove another evidence type's files, and collateral/ files not served this time, from DIR)",
    )
    .addHelpText(
      "after",
      examples(
        "cloister attest --url http://127.0.0.1:8080 --policy .cloister/policy.json",
        "cloister attest --url https://cloister.example --policy policy.json --api-key-file my-api-key --json --document-out document.jws",
        "mkdir -p evidence && cloister attest --url http://127.0.0.1:8080 --policy .cloister/policy.json --evidence-out evidence   # then: cloister verify-evidence --tee snp --report evidence/report.bin --cert evidence/cert.der --policy .cloister/policy.json (TDX: --tee tdx --quote evidence/quote.bin --collateral evidence/collateral, the Intel collateral the deployment served, saved when it served some; attest prints the command for what it saved; --policy: a simulator's evidence verifies only under a policy that trusts it)",
        "cloister attest --url http://127.0.0.1:8080 --policy .cloister/policy.json --enclave 0123456789abcdef0123456789abcdef   # one pool member, by its key id",
      ),
    )
    .action(
      async (options: ClientConnectionOptions & { documentOut?: string; evidenceOut?: string; force?: boolean }) => {
        const { runAttest } = await import("./run-client.ts");
        await runAttest(options);
      },
    );

  connection(
    program
      .command("proxy")
      .description(
        "verify the enclave, then serve an OpenAI-compatible API on 127.0.0.1 that seals every request to it",
      ),
  )
    .option("--port <n>", "local port (0 = any free port)", intOption("--port", 0, 65535), DEFAULT_PROXY_PORT)
    .option(
      "--token-file <file>",
      "the token local apps must send as their API key (made, mode 0600, when the file does not exist; each directory made for it gets a .gitignore of *)",
      LOCAL_PROXY_TOKEN_FILE,
    )
    .addHelpText(
      "after",
      examples(
        "cloister proxy --url http://127.0.0.1:8080 --policy .cloister/policy.json",
        "cloister proxy --url https://cloister.example --policy policy.json --api-key-file my-api-key --port 8787",
      ),
    )
    .action(async (options: ClientConnectionOptions & { port: number; tokenFile: string }) => {
      const { runProxy } = await import("./run-proxy.ts");
      await runProxy(options);
    });

  program
    .command("web")
    .description(
      "serve, on 127.0.0.1, a page that verifies the enclave and seals questions in the browser (the host must allow its origin: --cors-origin)",
    )
    .requiredOption("--url <url>", "the host's URL, as the browser will reach it (printed by cloister up)")
    .requiredOption("--policy <file>", "client policy file (cloister up writes .cloister/policy.json)")
    .option("--port <n>", "local port (0 = any free port)", intOption("--port", 0, 65535), DEFAULT_WEB_PORT)
    .option(
      "--max-tokens <n>",
      "most tokens per answer",
      intOption("--max-tokens", REQUEST_LIMITS.maxTokens.min, REQUEST_LIMITS.maxTokens.max),
      256,
    )
    .addHelpText(
      "after",
      examples(
        "cloister web --url http://127.0.0.1:8080 --policy .cloister/policy.json   # after cloister up; open the address it prints",
        "cloister web --url http://127.0.0.1:9080 --policy .cloister/policy.json --port 9788   # after cloister up --host-port 9080 --cors-origin http://127.0.0.1:9788",
      ),
    )
    .action(async (options: WebCommandOptions) => {
      const { runWeb } = await import("./run-web.ts");
      await runWeb(options);
    });

  program
    .command("policy")
    .description("client policies: which enclaves a client sends prompts to")
    .addHelpText("after", examples(POLICY_INIT_EXAMPLE))
    .command("init")
    .description(
      "verify a running deployment's evidence (pinned AMD/Intel roots) and manifest (operator key), write a policy pinning what it presents, and check the policy accepts it",
    )
    .requiredOption("--url <url>", "the host's URL")
    .requiredOption(
      "--operator-key <file>",
      "the operator's public key (JWK) that signs the deployment's manifest; repeatable: the policy trusts each key given, in that order (while rotating the signing key: the old and the new), and the manifest must verify under one of them",
      repeatableOption,
    )
    .option("--api-key-file <file>", API_KEY_FILE_HELP)
    .option(
      "--enclave <key-id>",
      "pin from this enclave of a pool only, by its key id (32 lower-case hex digits: cloister attest prints it, the host logs each member's, its /healthz lists them; default: the member the host offers); the self-check asks that member too, so a pool of SNP and TDX members takes one run per platform",
      enclaveKeyIdOption,
    )
    .option(
      "--out <file>",
      "write the policy to this file (default: stdout); an existing file is refused unless --force",
    )
    .option("--force", "with --out: replace the file if it exists")
    .option("--allow-simulator", "accept simulated evidence (writes an INSECURE development policy)")
    .option("--allow-migration-agent", "accept an SNP guest policy with MIGRATE_MA set (the host sets it at launch)")
    .option(
      "--allow-no-collateral",
      "TDX: write a policy that skips the TCB status when the deployment serves no TCB collateral (its enclave without --tdx-collateral)",
    )
    .option("--allow-no-secure-boot", "Azure: write a policy that accepts a VM without Secure Boot")
    .option(
      "--allow-console",
      "Azure: write a policy that accepts a VM with a serial console (a shell for the subscription owner)",
    )
    .option("--json", "print {policy, notes, written} as JSON")
    .addHelpText(
      "after",
      examples(
        POLICY_INIT_EXAMPLE,
        `${POLICY_INIT_EXAMPLE} --force   # replace an existing policy.json`,
        "cloister policy init --url https://cloister.example --operator-key keys/operator.public.jwk --api-key-file my-api-key --enclave 0123456789abcdef0123456789abcdef --out policy-snp.json   # one pool member, by its key id",
        "cloister policy init --url https://cloister.example --operator-key keys/operator.public.jwk --operator-key keys/operator-2.public.jwk --api-key-file my-api-key --out policy.json   # rotating the signing key: trust the old and the new",
      ),
    )
    .action(async (options: import("./run-policy.ts").PolicyInitOptions) => {
      const { runPolicyInit } = await import("./run-policy.ts");
      await runPolicyInit(options);
    });

  program
    .command("receipt")
    .description("work with the signed receipts the enclave attaches to every answer")
    .addHelpText("after", examples(RECEIPT_VERIFY_EXAMPLE))
    .command("verify")
    .description(
      "verify a receipt offline: the enclave's signature, (with --document) that the key is the one of the " +
        "attestation document the receipt names, and (with --answer-file) that it is for this answer",
    )
    .requiredOption("--receipt <file>", "the receipt line, or the JSON cloister chat --json printed")
    .requiredOption(
      "--key <hex>",
      "the enclave's Ed25519 signing key, from a verification you trust (cloister attest --json: signingKey); " +
        "without --document it is trusted as given",
    )
    .option(
      "--document <file>",
      "the attestation document you saved (its compact JWS, or the JSON of GET /v1/attestation): checks that " +
        "the receipt's documentDigest is its SHA-256, that it is signed by --key and carries it (sig_jwk). Its " +
        "hardware evidence is NOT checked here (that needs a fresh nonce): verify the enclave with cloister attest",
    )
    .option("--answer-file <file>", "the answer's exact bytes: checks the receipt's answerHash")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      examples(
        'cloister receipt verify --receipt answer.json --key "$(jq -r .signingKey answer.json)"   # answer.json: chat --json',
        RECEIPT_VERIFY_EXAMPLE,
      ),
    )
    .action(
      async (options: { receipt: string; key: string; document?: string; answerFile?: string; json?: boolean }) => {
        const { runReceiptVerify } = await import("./run-receipt.ts");
        await runReceiptVerify(options);
      },
    );

  program
    .command("bundle")
    .description(
      "write the browser SDK (verify and seal in a web page) as one ES module, to serve from your own origin",
    )
    .requiredOption(
      "--out <file>",
      "where to write it, e.g. dist/cloister-browser.js; an existing file is refused unless --force",
    )
    .option("--force", "replace the --out file if it exists")
    .option("--no-minify", "keep it readable")
    .option(
      "--no-simulator",
      "leave the simulator's roots out: such a build refuses any policy that trusts the simulator",
    )
    .addHelpText(
      "after",
      examples(
        "cloister bundle --no-simulator --out dist/cloister-browser.js",
        "cloister bundle --no-minify --force --out dist/cloister-browser-dev.js   # readable, simulator policies too",
      ),
    )
    .action(async (options: { out: string; force?: boolean; minify: boolean; simulator: boolean }) => {
      const { runBundle } = await import("./run-web.ts");
      await runBundle(options);
    });

  connection(
    program
      .command("chat")
      .description(
        "verify the enclave, then send a sealed prompt and stream the answer (prompt from an argument, --prompt-file or standard input; interactive on a terminal)",
      )
      .argument(
        "[prompt]",
        "the prompt (visible to other users in the process list and kept in shell history: prefer --prompt-file or standard input for anything private); omit for an interactive session on a terminal",
      ),
  )
    .option(
      "--prompt-file <file>",
      "read the prompt from this file, exactly as it is (UTF-8; - reads all of standard input). Without PROMPT or this option, a standard input that is not a terminal is read as the prompt",
    )
    .option(
      "--max-tokens <n>",
      "most tokens to generate (default and at most: the manifest's inference.maxTokens)",
      intOption("--max-tokens", REQUEST_LIMITS.maxTokens.min, REQUEST_LIMITS.maxTokens.max),
    )
    .option("--seed <n>", "sampling seed", intOption("--seed", REQUEST_LIMITS.seed.min, REQUEST_LIMITS.seed.max))
    .option(
      "--json",
      "print the answer, usage, receipt and audit reference as JSON (a refusal: {error, audit, …}, exit 1)",
    )
    .addHelpText(
      "after",
      examples(
        'cloister chat --url http://127.0.0.1:8080 --policy .cloister/policy.json "What does the enclave do?"',
        "cloister chat --url http://127.0.0.1:8080 --policy .cloister/policy.json --prompt-file question.txt",
        "cloister chat --url http://127.0.0.1:8080 --policy .cloister/policy.json   # interactive on a terminal",
      ),
    )
    .action(
      async (
        prompt: string | undefined,
        options: ClientConnectionOptions & { maxTokens?: number; seed?: number; promptFile?: string },
      ) => {
        const { runChat } = await import("./run-client.ts");
        await runChat(prompt, options);
      },
    );
}
