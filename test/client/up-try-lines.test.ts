/**
 * The commands `cloister up` prints under "Try:": they must work as printed from the directory it
 * was started in, so with `--dir D` (not .cloister) each command that sends the API key names D's
 * key file (the client commands' default is .cloister/api-key), and the proxy D's token file (its
 * default is .cloister/proxy-token).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_WEB_ORIGIN } from "../../client/cli/commands.ts";
import { kbsLine, tryLines } from "../../client/cli/run-up.ts";

const hostUrl = "http://127.0.0.1:8080";
/** up's default --cors-origin: the origin of cloister web's page on its default port. */
const corsOrigins = [DEFAULT_WEB_ORIGIN];
const commands = (lines: string[]) => lines.map((line) => line.replace(/^(Try:)? +npx cloister /, ""));

describe("cloister up: the Try lines", () => {
  it("name no key file when the key is the default .cloister/api-key", () => {
    const lines = tryLines({
      hostUrl,
      policy: ".cloister/policy.json",
      apiKeyFile: join(process.cwd(), ".cloister/api-key"),
      corsOrigins,
    });
    expect(lines).toHaveLength(5);
    for (const line of lines) expect(line).not.toContain("--api-key-file");
    for (const line of lines) expect(line).not.toContain("--token-file");
    expect(lines[0]).toBe(`Try:  npx cloister attest --url ${hostUrl} --policy .cloister/policy.json`);
  });

  it("with --dir D, add --api-key-file D/api-key (from the current directory) to every command that sends it", () => {
    const lines = commands(
      tryLines({
        hostUrl,
        policy: "deploy/policy.json",
        apiKeyFile: join(process.cwd(), "deploy", "api-key"),
        corsOrigins,
      }),
    );
    expect(lines).toEqual([
      `attest --url ${hostUrl} --policy deploy/policy.json --api-key-file deploy/api-key`,
      `chat --url ${hostUrl} --policy deploy/policy.json --api-key-file deploy/api-key "What does the enclave do?"`,
      `audit checkpoint --url ${hostUrl} --policy deploy/policy.json --api-key-file deploy/api-key --out checkpoint.json`,
      // The proxy makes its token in D too, not in the current directory's .cloister/.
      `proxy --url ${hostUrl} --policy deploy/policy.json --api-key-file deploy/api-key --token-file deploy/proxy-token   (OpenAI-compatible, on 127.0.0.1:8787 unless --port)`,
      // cloister web has no --api-key-file: its page asks for the key; its note in the proxy's column.
      `web --url ${hostUrl} --policy deploy/policy.json${" ".repeat(67)}(a page that verifies and seals in the browser)`,
    ]);
  });

  it("quote a path the shell would split", () => {
    const [attest] = tryLines({
      hostUrl,
      policy: "my deploy/policy.json",
      apiKeyFile: join(process.cwd(), "my deploy", "api-key"),
      corsOrigins,
    });
    expect(attest).toBe(
      `Try:  npx cloister attest --url ${hostUrl} --policy 'my deploy/policy.json' --api-key-file 'my deploy/api-key'`,
    );
    expect(
      tryLines({ hostUrl, policy: "p.json", apiKeyFile: join(process.cwd(), "my deploy", "api-key"), corsOrigins })[3],
    ).toContain(" --token-file 'my deploy/proxy-token' ");
  });
});

describe("cloister up: the Try line of cloister web", () => {
  const webLine = (origins: readonly string[]) =>
    commands(
      tryLines({
        hostUrl,
        policy: "policy.json",
        apiKeyFile: join(process.cwd(), ".cloister/api-key"),
        corsOrigins: origins,
      }),
    ).at(-1);

  it("names the port of the page's origin the host allows, when up allows another than the default", () => {
    const web = `web --url ${hostUrl} --policy policy.json`;
    const says = "(a page that verifies and seals in the browser)";
    expect(webLine([DEFAULT_WEB_ORIGIN])).toBe(`${web}     ${says}`);
    expect(webLine(["https://app.example", DEFAULT_WEB_ORIGIN])).toBe(`${web}     ${says}`);
    // cloister web serves its page on 127.0.0.1: on its default port, the host would refuse it.
    expect(webLine(["http://127.0.0.1:9000"])).toBe(`${web} --port 9000   ${says}`);
    expect(webLine(["https://app.example", "http://127.0.0.1:9000"])).toBe(`${web} --port 9000   ${says}`);
    expect(webLine(["http://127.0.0.1"])).toBe(`${web} --port 80   ${says}`);
  });

  it("start the proxy's and the page's notes in one column, whatever --port and --dir add to either command", () => {
    const cases = [
      { corsOrigins: [DEFAULT_WEB_ORIGIN], apiKeyFile: join(process.cwd(), ".cloister/api-key") },
      { corsOrigins: ["http://127.0.0.1:9000"], apiKeyFile: join(process.cwd(), ".cloister/api-key") },
      { corsOrigins: [DEFAULT_WEB_ORIGIN], apiKeyFile: join(process.cwd(), "deploy", "api-key") },
    ];
    for (const c of cases) {
      const lines = tryLines({ hostUrl, policy: "policy.json", ...c });
      const proxy = lines[3] as string;
      const web = lines[4] as string;
      expect(proxy.indexOf("(OpenAI-compatible"), JSON.stringify(c)).toBe(web.indexOf("(a page"));
      // Three spaces at least between a command and its note.
      expect(Math.min(proxy.indexOf("   ("), web.indexOf("   ("))).toBeGreaterThan(0);
    }
  });

  it("suggests no page the host would refuse: it says which origin to allow", () => {
    const note =
      "      (cloister web: the host allows no origin it serves its page from; start up with --cors-origin http://127.0.0.1:8788 for it)";
    // localhost is another origin than 127.0.0.1, where cloister web serves its page; https neither.
    for (const origins of [[], ["http://localhost:9000"], ["https://127.0.0.1:9000"]]) {
      expect(webLine(origins), origins.join(" ")).toBe(note);
    }
  });
});

describe("cloister up: the key broker line", () => {
  it("says the key went to the attested enclave, or to each of a pool's", () => {
    const line = (enclaves: number) =>
      kbsLine({
        kbsUrl: "http://127.0.0.1:8790",
        keyId: "cloister-dev-tiny",
        configPath: ".cloister/kbs/config.json",
        enclaves,
      });
    expect(line(1)).toBe(
      '  key broker   http://127.0.0.1:8790  (released model key "cloister-dev-tiny" to the attested enclave; config .cloister/kbs/config.json)',
    );
    expect(line(2)).toContain('(released model key "cloister-dev-tiny" to each of the 2 attested enclaves;');
  });
});
