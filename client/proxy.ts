/**
 * The OpenAI-compatible local proxy (`cloister proxy`, DESIGN.md "Planned next"): unmodified apps
 * that speak the OpenAI API (the `openai` SDKs, curl) send plain requests to 127.0.0.1; the proxy
 * forwards each one as a sealed request through a verified Session, so the prompt leaves this
 * machine only sealed to an attested enclave, and every answer frame is authenticated before a
 * byte of it reaches the app.
 *
 * Routes: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions, POST /v1/completions (both
 * with `stream`), GET /healthz; another method on one of them is a 405 with `allow`. Local callers
 * present a bearer token (the proxy's own, not the host's API key, which stays in the proxy). The
 * model name must be the attested model's, and the SDK checks it again against the enclave the
 * request is about to be sealed to, after any re-verification (GenerationOptions.expectModel): an
 * enclave found meanwhile that serves another model gets nothing (404 model_not_found), so an
 * answer's `model` is the model that wrote it. Parameters the enclave cannot honour (n > 1, tools and
 * a tool's messages, logprobs, JSON modes, message keys other than role and content) are refused
 * rather than ignored, but their values that change nothing (NEUTRAL: tool_choice "none", an empty
 * logit_bias…) are taken; max_tokens beside max_completion_tokens is refused, as OpenAI refuses
 * it. A prompt over the model's context size is OpenAI's context_length_exceeded. A body that names
 * a member twice in one object, or a parameter of the wrong type, is refused naming it, before the
 * session is verified again (a bad request is a 400 during an outage too). Errors use
 * OpenAI's shape `{error: {message, type, param, code}}`. Every error a retry would only repeat
 * carries `x-should-retry: false` so SDKs do not retry it: the app's bad request, a policy refusal
 * (the enclave's 500 chat_wrapper_failed too), attestation, integrity and configuration failures, a
 * host's redirect or body limit, the proxy's own fault. Only the host's passing failures (429, 503,
 * 504 and its other 502s) are left to retry, a 429 or 503 with the host's `retry-after` on.
 *
 * Each answer carries an extra `cloister` field: the enclave's signed receipt, the audit
 * record's `requestIdHash` and `redacted` (the PII kinds the enclave replaced in the prompt before
 * the model saw it, with counts, or null: the app's answer is to that prompt; absent when the enclave
 * did not say, a build from before it did), never the audit *opening* (the SDK's `audit.opening`).
 * The opening is the requester's secret: with it and the host's stored audit log anyone can test
 * guesses of the prompt, and apps commonly log raw responses. `requestIdHash` is a hash of 16 random
 * bytes (it only names the record); the receipt holds hashes of this request (salted by its random id) and of
 * the answer that travels beside it.
 *
 * The proxy logs method, path, status, duration and the request's `x-request-id` only: never a prompt,
 * an answer or a token. Every answer (success, stream, error) carries that `x-request-id` (the openai
 * SDKs' `_request_id`), so an app's own log line can be joined to the proxy's: 16 fresh random bytes
 * per request, derived from nothing the request holds, and not the sealed request's `requestId` (which
 * salts its receipt and names its audit record, docs/protocol.md).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { VerifiedEnclave } from "../attestation/document.ts";
import { describeMemberPath, findDuplicateMember } from "../attestation/json-duplicates.ts";
import { DuplicateMemberError, jsonTextRefusal, parseJsonText } from "../attestation/json-text.ts";
import { stringifyJsonVisibly } from "../attestation/untrusted-text.ts";
import { REQUEST_LIMITS } from "../sealed/request-limits.ts";
import { ClientError } from "./errors.ts";
import { isLoopbackHost, loopbackHostOnly } from "./loopback.ts";
import {
  type ChatEvent,
  type ChatMessage,
  checkRequestArguments,
  describeFound,
  describeName,
  type GenerationOptions,
  type Session,
} from "./sdk.ts";

export interface ProxyOptions {
  readonly session: Session;
  /** Bearer token local callers must present. */
  readonly token: string;
  /** One line per request (method, path, status, duration, x-request-id): no content. */
  readonly log?: (line: string) => void;
  readonly now?: () => Date;
  /**
   * Aborted just before the proxy's stop cuts the streams still under way, at the end of its grace
   * or at a second signal (the server's RunningServer.close `beforeCut`, as cloister proxy passes it
   * to closeOnSignal): each is logged `cut_at_stop`, not `client_gone`, as the app did not leave.
   */
  readonly cutting?: AbortSignal;
}

/**
 * What the proxy's local token must be: 32..256 printable ASCII characters (what `cloister proxy`
 * makes is 68), so that no empty or guessable token lets a request in without one.
 */
const PROXY_TOKEN_PATTERN = /^[\x21-\x7e]{32,256}$/;

/** Null for a token the proxy takes (PROXY_TOKEN_PATTERN), else what was found instead: never the token. */
export function proxyTokenProblem(token: string): string | null {
  if (PROXY_TOKEN_PATTERN.test(token)) return null;
  return token.length < 32 || token.length > 256
    ? `${token.length} characters`
    : "a character other than printable ASCII (a space, a control character, a letter beyond ASCII)";
}

/** The largest request body accepted (a prompt is sealed whole; the host limits it again). */
export const PROXY_MAX_BODY_BYTES = 4 * 1024 * 1024;

type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "api_error"
  | "cloister_verification_error"
  // OpenAI's type for a limit on requests a minute (its 429 `rate_limit_exceeded`).
  | "requests";

/** What the access log shows for a request whose app went away before its answer (nginx's 499). */
const CLIENT_CLOSED_STATUS = 499 as ContentfulStatusCode;

class ProxyError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly retry = true,
    /** Sent as `retry-after` (the host's, from the SDK's ClientError): openai SDKs wait that long. */
    readonly retryAfterSeconds: number | undefined = undefined,
  ) {
    super(message);
    this.name = "ProxyError";
  }
}

const invalid = (param: string, message: string, code = "invalid_value") =>
  new ProxyError(400, "invalid_request_error", code, message, param, false);

/** Another model than the attested one was named (in a request body or GET /v1/models/{id}). */
const modelNotFound = (model: string, found: string) =>
  new ProxyError(
    404,
    "invalid_request_error",
    "model_not_found",
    `model: this proxy serves only the attested model ${JSON.stringify(model)}, found ${JSON.stringify(found.slice(0, 200))}`,
    "model",
    false,
  );

/**
 * The model `enclave` attests: as apps name it (`id`, the service and model file, e.g.
 * "cloister-dev/tiny.gguf") and as the SDK checks it again (`expect`, GenerationOptions.expectModel).
 */
function attestedModel(enclave: VerifiedEnclave): { id: string; expect: ExpectModel } {
  const service = enclave.manifest.service.name;
  const file = enclave.manifest.model.file;
  return { id: `${service}/${file}`, expect: { service, file } };
}

/** The model id apps must send (attestedModel's id) for the session's last verified enclave. */
export function attestedModelId(session: Session): string {
  return attestedModel(session.enclave).id;
}

/**
 * The proxy's log line (no content) for a re-verification that found another enclave than the
 * session's last one (another boot: another document; or none, after a failed verification): what
 * the app's requests are now sealed to, as the start-up banner described the first. Null when the
 * same document verified again. For ConnectOptions.onVerified.
 */
export function enclaveChangeLine(
  enclave: VerifiedEnclave,
  previous: VerifiedEnclave | null,
  now: Date,
): string | null {
  if (previous !== null && previous.documentDigest === enclave.documentDigest) return null;
  const { model } = enclave.manifest;
  return JSON.stringify({
    type: "proxy-enclave-changed",
    time: now.toISOString(),
    tee: enclave.tee,
    simulated: enclave.simulated,
    measurement: enclave.measurement,
    model: attestedModel(enclave).id,
    modelSha256: model.sha256,
    modelChanged:
      previous === null
        ? null
        : previous.manifest.model.sha256 !== model.sha256 || previous.manifest.model.file !== model.file,
    documentDigest: enclave.documentDigest,
  });
}

/**
 * attestedModel of a session verified now: one whose last re-verification failed has no verified
 * enclave, and is verified again first (a failure is the request's error).
 */
async function verifiedModel(
  session: Session,
  signal: AbortSignal | undefined,
): Promise<{ id: string; expect: ExpectModel }> {
  if (!session.attested) await session.attest(signal === undefined ? {} : { signal });
  return attestedModel(session.enclave);
}

/** The SDK's configuration errors about the request's own arguments (client/sdk.ts). */
const REQUEST_ARGUMENT_CODES: ReadonlySet<string> = new Set(["BAD_OPTION", "BAD_MESSAGES", "BAD_PROMPT"]);

/**
 * The OpenAI parameter an SDK argument error is about, from the argument the SDK names on the error
 * (`field`: `topP`, `stop[1]`, `messages[0].content`, `prompt`): snake_case as the app sent it
 * (`top_p`, `max_tokens`); a stop string's index becomes `stop`, as the app may have sent one string.
 */
function openAiParam(field: string | undefined): string | null {
  if (field === undefined) return null;
  if (/^stop\[\d+\]$/.test(field)) return "stop";
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** What a ClientError from the SDK becomes for an OpenAI client. */
function fromClientError(error: ClientError): ProxyError {
  const code = error.code.toLowerCase();
  // The enclave verified for this request (verified again since the app's model name was checked)
  // serves another model: refused before anything was sealed, as OpenAI refuses an unknown model.
  if (error.code === "MODEL_MISMATCH") {
    return new ProxyError(
      404,
      "invalid_request_error",
      "model_not_found",
      `model: the enclave was verified again for this request and serves another model; the request was not sent (${error.message}). GET /v1/models lists the model now attested`,
      "model",
      false,
    );
  }
  switch (error.kind) {
    case "policy":
      // The engine's own refusal of a prompt over the model's context size (a sealed error frame
      // with this code, no detail): OpenAI clients know it as context_length_exceeded. Only from the
      // enclave's authenticated frame: the same code in a host's HTTP error is the untrusted host's
      // claim, a transport error (below). The SDK makes policy errors only from such frames (sdk.ts,
      // origin "enclave"), so the origin test always holds today; it is kept so that a policy error
      // made from the host's word later cannot claim the context size. A policy rule's
      // maxPromptTokens limit is a POLICY_BLOCKED like any other rule (kept as is).
      if (error.code === "PROMPT_TOO_LONG" && error.origin === "enclave") {
        return new ProxyError(
          400,
          "invalid_request_error",
          "context_length_exceeded",
          "the prompt is longer than the attested model's context size (the enclave refused it: PROMPT_TOO_LONG)",
          null,
          false,
        );
      }
      // A new conversation shape refused until the enclave restarts (its template's worker holds
      // another Jinja wrapper than its engine's): the enclave's fault, not the app's request, and
      // a retry is refused again: a 500, not retried.
      if (error.code === "CHAT_WRAPPER_FAILED" && error.origin === "enclave") {
        return new ProxyError(500, "api_error", code, error.message, null, false);
      }
      return new ProxyError(400, "invalid_request_error", code, error.message, null, false);
    case "transport": {
      // The app went away (the proxy aborts the request when it does): no answer can reach it, and
      // the access log says so (499, as the host logs a client that left) rather than blaming the host.
      if (error.code === "ABORTED") {
        return new ProxyError(CLIENT_CLOSED_STATUS, "api_error", code, error.message, null, false);
      }
      // The host's request limit: the same request would be refused again, so it is not retried.
      if (error.code === "BODY_TOO_LARGE") {
        return new ProxyError(413, "invalid_request_error", "request_too_large", error.message, null, false);
      }
      // A redirect is not followed (the API key would go where the host points): a retry gets the
      // same one; the proxy's --url is to change.
      if (error.code === "HOST_REDIRECT") {
        return new ProxyError(502, "api_error", code, error.message, null, false);
      }
      // The host's per-key limit, as OpenAI says its own: openai SDKs retry on the status alone,
      // this is for apps that switch on the code. (OpenAI names no code for a 503: ours stay.)
      if (error.code === "RATE_LIMITED") {
        return new ProxyError(
          429,
          "requests",
          "rate_limit_exceeded",
          error.message,
          null,
          true,
          error.retryAfterSeconds,
        );
      }
      const status: ContentfulStatusCode =
        error.code === "HOST_BUSY" || error.code === "ENGINE_BUSY" ? 503 : error.code.endsWith("TIMEOUT") ? 504 : 502;
      return new ProxyError(status, "api_error", code, error.message, null, true, error.retryAfterSeconds);
    }
    case "configuration":
      // The SDK's own check of the request against the enclave's limits (sealed/request-limits.ts),
      // made before anything is sealed: the app's request is at fault, as OpenAI says with a 400.
      if (REQUEST_ARGUMENT_CODES.has(error.code)) {
        return new ProxyError(400, "invalid_request_error", code, error.message, openAiParam(error.field), false);
      }
      return new ProxyError(502, "cloister_verification_error", code, `${error.kind}: ${error.message}`, null, false);
    default:
      // attestation, integrity, and the other configuration errors: not something a retry fixes.
      return new ProxyError(502, "cloister_verification_error", code, `${error.kind}: ${error.message}`, null, false);
  }
}

function errorBody(error: ProxyError) {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.code } };
}

function asProxyError(error: unknown): ProxyError {
  if (error instanceof ProxyError) return error;
  if (error instanceof ClientError) return fromClientError(error);
  return new ProxyError(500, "api_error", "internal_error", "internal error in the proxy", null, false);
}

/**
 * What the log line of a fault of the proxy itself (a 500 internal_error) says of it: the error's
 * class and its code when it has one of the usual shape, never its message, which may quote the
 * app's request (a prompt).
 */
function faultOf(error: Error): string {
  if (error instanceof ThrownValue) return `a thrown ${error.thrown === null ? "null" : typeof error.thrown}`;
  const name = /^[A-Za-z_$][\w$]{0,63}$/.test(error.constructor.name) ? error.constructor.name : "Error";
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? `${name} ${code}` : name;
}

/**
 * A thrown value that is not an Error, as an Error: hono hands only Errors to onError, and lets any
 * other value through every middleware, so the request had no log line and no answer in OpenAI's shape.
 */
class ThrownValue extends Error {
  constructor(readonly thrown: unknown) {
    super("a value that is not an Error was thrown");
    this.name = "ThrownValue";
  }
}

type NodeResponse = { writableLength: number; destroyed: boolean; destroy(): void };

/** node's response object when the app is served on node:http (@hono/node-server), else undefined. */
function nodeResponse(c: Context): NodeResponse | undefined {
  return (c.env as { outgoing?: NodeResponse } | undefined)?.outgoing;
}

/** Resolves once node's response (when serving on node:http) has handed its buffered bytes to the kernel. */
async function outputFlushed(c: Context): Promise<void> {
  // First a turn of the event loop: the write of the last event may still be queued behind this pull.
  await new Promise((resolve) => setImmediate(resolve));
  const outgoing = nodeResponse(c);
  for (let waited = 0; waited < 1000; waited += 5) {
    if (outgoing === undefined || outgoing.destroyed || outgoing.writableLength === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// --- request parsing ------------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** `value` as an object, else a 400 naming `param` (`body` for the request body itself). */
function objectBody(value: unknown, param: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(
      param,
      `${param === "body" ? "request body" : param}: expected an object, found ${describeFound(value)}`,
    );
  }
  return value as Json;
}

/**
 * The request body's JSON. A member named twice in one object is refused (as the project's policy
 * and configuration files are: attestation/json-text.ts): JSON.parse keeps the last, while whatever
 * else reads the same bytes (a logging gateway, an app's own check of `model` or `stream`) may take
 * the first. The error names where (`param`), never the text: V8's SyntaxError would quote it.
 */
function parseBody(text: string): Json {
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (error) {
    const duplicate = error instanceof DuplicateMemberError ? findDuplicateMember(text) : null;
    throw invalid(
      duplicate === null ? "body" : openAiPath(duplicate.path),
      `request body: ${jsonTextRefusal(error, "a JSON object")}`,
    );
  }
  return objectBody(value, "body");
}

/** A member path as OpenAI's `param` names it (`messages[0].content`); a name unlike a field name by its length only. */
function openAiPath(path: readonly (string | number)[]): string {
  return path
    .map((part, i) => (typeof part === "number" ? `[${part}]` : `${i === 0 ? "" : "."}${describeMemberPath([part])}`))
    .join("");
}

type Endpoint = "chat" | "completions";

/** Chat's identifiers beside `user` (its successors): strings for OpenAI's own use, nothing the answer depends on. */
const CHAT_IDENTIFIERS = ["safety_identifier", "prompt_cache_key"];

/**
 * The parameters each endpoint honours. Anything else with a value other than null is refused
 * (unsupported_parameter), so an app never silently gets less than it asked for: `echo`, `suffix`,
 * penalties, tools, audio, reasoning effort… are not things the attested enclave does.
 */
const ACCEPTED: Readonly<Record<Endpoint, ReadonlySet<string>>> = {
  chat: new Set([
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    ...CHAT_IDENTIFIERS,
  ]),
  completions: new Set(["model", "prompt", "stream", "stream_options", "max_tokens"]),
};
const ACCEPTED_BOTH = ["temperature", "top_p", "seed", "stop", "n", "response_format", "user"];

/**
 * Accepted only at the values that change nothing (`expected` says which, for the 400 that refuses
 * any other): what OpenAI does by default, or what cannot matter here, as this proxy sends no tools
 * (`tools` is refused) and stores nothing. `tool_choice: "auto"` or `"required"`, a bias, metadata
 * to store, an audio modality would each be dropped without the app knowing, so they stay refused.
 */
const NEUTRAL: Readonly<
  Record<string, { expected: string; neutral: (value: unknown) => boolean; endpoint?: Endpoint }>
> = {
  frequency_penalty: only(0),
  presence_penalty: only(0),
  logprobs: only(false),
  store: only(false),
  echo: { ...only(false), endpoint: "completions" },
  best_of: { ...only(1), endpoint: "completions" },
  tool_choice: { ...only("none", "this proxy sends no tools"), endpoint: "chat" },
  function_call: { ...only("none", "this proxy sends no functions"), endpoint: "chat" },
  parallel_tool_calls: {
    expected: "a boolean (this proxy sends no tools)",
    neutral: (value) => typeof value === "boolean",
    endpoint: "chat",
  },
  logit_bias: { expected: "{} (no bias)", neutral: isEmptyObject },
  metadata: { expected: "{} (nothing is stored)", neutral: isEmptyObject, endpoint: "chat" },
  modalities: {
    expected: '["text"]',
    neutral: (value) => Array.isArray(value) && value.length === 1 && value[0] === "text",
    endpoint: "chat",
  },
};

/** A NEUTRAL entry that takes `value` alone. */
function only(value: unknown, why?: string): { expected: string; neutral: (found: unknown) => boolean } {
  return {
    expected: `${JSON.stringify(value)}${why === undefined ? "" : ` (${why})`}`,
    neutral: (found) => found === value,
  };
}

function isEmptyObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0;
}

type ExpectModel = NonNullable<GenerationOptions["expectModel"]>;

function refuseUnsupported(body: Json, endpoint: Endpoint): void {
  for (const [name, value] of Object.entries(body)) {
    if (value === null || ACCEPTED[endpoint].has(name) || ACCEPTED_BOTH.includes(name)) continue;
    // Own keys only, as for ROLES: NEUTRAL["constructor"] is Object's.
    const neutral = Object.hasOwn(NEUTRAL, name) ? NEUTRAL[name] : undefined;
    if (neutral !== undefined && (neutral.endpoint ?? endpoint) === endpoint) {
      if (neutral.neutral(value)) continue;
      throw invalid(
        name,
        `${name}: only ${neutral.expected} is supported by this proxy, found ${describeName(value)}`,
        "unsupported_parameter",
      );
    }
    throw invalid(
      name,
      `${name}: not supported by this proxy (the attested enclave cannot honour it)`,
      "unsupported_parameter",
    );
  }
}

function generationOptions(body: Json, endpoint: Endpoint): GenerationOptions {
  refuseUnsupported(body, endpoint);
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw invalid(
      "n",
      `n: expected 1 (one choice per request), found ${describeFound(body.n)}`,
      "unsupported_parameter",
    );
  }
  if (body.response_format !== undefined && body.response_format !== null) {
    const format = objectBody(body.response_format, "response_format");
    if (format.type !== "text") {
      throw invalid(
        "response_format",
        `response_format: only {"type": "text"} is supported, found type ${describeName(format.type)}`,
        "unsupported_parameter",
      );
    }
    // A schema or other member beside type "text" would otherwise be dropped without the app knowing.
    refuseUnknownKeys(format, ["type"], "response_format");
  }
  const number = (name: string, min: number, max: number, integer: boolean): number | undefined => {
    const value = body[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
      throw invalid(name, `${name}: expected a number in ${min}..${max}, found ${describeFound(value)}`);
    }
    if (integer && !Number.isInteger(value)) throw invalid(name, `${name}: expected an integer, found ${value}`);
    return value;
  };
  const L = REQUEST_LIMITS;
  const maxCompletionTokens = number("max_completion_tokens", L.maxTokens.min, L.maxTokens.max, true);
  const maxTokensParam = number("max_tokens", L.maxTokens.min, L.maxTokens.max, true);
  // As OpenAI: both at once is refused (its invalid_parameter_combination), not one taken silently.
  if (maxCompletionTokens !== undefined && maxTokensParam !== undefined) {
    throw invalid(
      "max_tokens",
      `max_tokens and max_completion_tokens: expected at most one of them, found both (${maxTokensParam} and ${maxCompletionTokens})`,
      "invalid_parameter_combination",
    );
  }
  const maxTokens = maxCompletionTokens ?? maxTokensParam;
  const temperature = number("temperature", L.temperature.min, L.temperature.max, false);
  const topP = number("top_p", L.topP.above, L.topP.max, false);
  if (topP === L.topP.above) {
    throw invalid("top_p", `top_p: expected a number above ${L.topP.above} and at most ${L.topP.max}, found ${topP}`);
  }
  const seed = number("seed", L.seed.min, L.seed.max, true);
  let stop: string[] | undefined;
  if (typeof body.stop === "string") stop = [body.stop];
  else if (Array.isArray(body.stop) && body.stop.every((s) => typeof s === "string")) stop = body.stop as string[];
  else if (body.stop !== undefined && body.stop !== null) {
    throw invalid("stop", `stop: expected a string or an array of strings, found ${describeFound(body.stop)}`);
  }
  // Only named by the app for its own accounting or OpenAI's caching (not sent on), but a wrong type
  // is still refused.
  for (const name of ["user", ...CHAT_IDENTIFIERS]) {
    const value = body[name];
    if (value !== undefined && value !== null && typeof value !== "string") {
      throw invalid(name, `${name}: expected a string, found ${describeFound(value)}`);
    }
  }
  return {
    ...(maxTokens === undefined ? {} : { maxTokens }),
    ...(temperature === undefined ? {} : { temperature }),
    ...(topP === undefined ? {} : { topP }),
    ...(seed === undefined ? {} : { seed }),
    ...(stop === undefined ? {} : { stop }),
  };
}

/**
 * Refuses keys of a message or content part other than those the proxy honours (a null value counts
 * as absent, as for top-level parameters): `name`, `tool_calls`, `cache_control`… would otherwise
 * be dropped without the app knowing.
 */
function refuseUnknownKeys(value: Json, honoured: readonly string[], where: string): void {
  for (const [key, v] of Object.entries(value)) {
    if (v === null || honoured.includes(key)) continue;
    throw invalid(
      `${where}.${key}`,
      `${where}.${key}: not supported by this proxy (only ${honoured.join(" and ")} ${honoured.length === 1 ? "is" : "are"} honoured)`,
      "unsupported_parameter",
    );
  }
}

const ROLES: Readonly<Record<string, ChatMessage["role"]>> = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
};

/**
 * OpenAI's roles for a tool's (or a legacy function's) result: well-formed, but part of the tools this
 * proxy does not support (`tools`, `tool_calls`), so refused as they are (unsupported_parameter).
 */
const TOOL_ROLES: ReadonlySet<unknown> = new Set(["tool", "function"]);

function chatMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid("messages", `messages: expected a non-empty array, found ${describeFound(value)}`);
  }
  return value.map((m, i) => {
    const message = objectBody(m, `messages[${i}]`);
    // Own keys only: ROLES["constructor"] is Object's, and would pass for a role.
    const role =
      typeof message.role === "string" && Object.hasOwn(ROLES, message.role) ? ROLES[message.role] : undefined;
    if (role === undefined && TOOL_ROLES.has(message.role)) {
      throw invalid(
        `messages[${i}].role`,
        `messages[${i}].role: tools are not supported by this proxy (expected system, developer, user or assistant), ` +
          `found ${describeName(message.role)}`,
        "unsupported_parameter",
      );
    }
    if (role === undefined) {
      throw invalid(
        `messages[${i}].role`,
        `messages[${i}].role: expected system, developer, user or assistant, found ${describeName(message.role)}`,
      );
    }
    refuseUnknownKeys(message, ["role", "content"], `messages[${i}]`);
    const content = message.content;
    if (typeof content === "string") return { role, content };
    if (Array.isArray(content)) {
      const parts = content.map((p, j) => {
        const part = objectBody(p, `messages[${i}].content[${j}]`);
        if (part.type !== "text") {
          throw invalid(
            `messages[${i}].content[${j}]`,
            `messages[${i}].content[${j}]: only text parts are supported, found type ${describeName(part.type)}`,
            "unsupported_parameter",
          );
        }
        if (typeof part.text !== "string") {
          const where = `messages[${i}].content[${j}].text`;
          throw invalid(where, `${where}: expected a string, found ${describeFound(part.text)}`);
        }
        refuseUnknownKeys(part, ["type", "text"], `messages[${i}].content[${j}]`);
        return part.text;
      });
      return { role, content: parts.join("") };
    }
    throw invalid(
      `messages[${i}].content`,
      `messages[${i}].content: expected a string or an array of text parts, found ${describeFound(content)}`,
    );
  });
}

/**
 * The extra `cloister` field of an answer: the enclave's signed receipt (already checked by the
 * SDK), the audit record's requestIdHash, so the app can keep both, and what PII the enclave
 * redacted from the prompt (kinds and counts, or null; left out when the enclave did not say).
 * Never the audit opening: see the module comment.
 */
function cloisterField(event: Extract<ChatEvent, { type: "done" }>) {
  return {
    receipt: event.receipt,
    audit: event.audit === null ? null : { requestIdHash: event.audit.requestIdHash },
    redacted: event.redacted,
  };
}

/**
 * Reads and drops the body of a request refused without it (an unknown route, another method), so
 * that the connection is kept for the app's next request, as after the proxy's other refusals of a
 * request with a body (each reads it first: readBody). The shared listener closes a connection whose
 * answer goes out before its body has come (enclave/http.ts ClosingWhenUnreadResponse), and rightly
 * for its other servers: their clients are anonymous until checked (the key broker's always), and
 * reading a body only to refuse it is work for nobody and a connection held. Here the body is read
 * only under /v1, where the local token has been checked (the app is the user's own) and bodyLimit
 * bounds it (413 past it, unread, and the connection closed); an SDK's pooled connection dropped
 * would fail the app's next request. Elsewhere (no token) it is left unread, as the listener does.
 */
async function discardBody(c: Context): Promise<void> {
  if (!c.req.path.startsWith("/v1/")) return;
  await c.req.raw.body?.pipeTo(new WritableStream());
}

/**
 * A fresh `x-request-id` (OpenAI's shape, `req_` and 32 hex characters): 16 random bytes, derived from
 * nothing the request holds (no prompt, token or key), so the header and the log line say only which
 * request this was.
 */
function newRequestId(): string {
  return `req_${randomBytes(16).toString("hex")}`;
}

/** The proxy's OpenAI routes as an app whose base URL lacks `/v1` asks for them. */
const ROUTES_WITHOUT_V1 = /^\/(models(\/.+)?|chat\/completions|completions)$/;

// --- the app ----------------------------------------------------------------------------------------

export function createProxyApp(options: ProxyOptions): Hono {
  const { session } = options;
  const now = options.now ?? (() => new Date());
  // Checked here, not only where cloister proxy reads its token file: an empty token would match a
  // request that sends none.
  const tokenProblem = proxyTokenProblem(options.token);
  if (tokenProblem !== null) {
    throw new ClientError(
      "configuration",
      "BAD_OPTION",
      `token: expected 32..256 printable characters (the bearer token local apps send), found ${tokenProblem}`,
      { field: "token" },
    );
  }
  const expectedToken = Buffer.from(options.token, "utf8");
  const app = new Hono();
  // The requests that ended in a fault of the proxy itself, and what the log line says of it.
  const faults = new WeakMap<Request, string>();
  // Each request's x-request-id, for its stream's end line (proxy-stream) too. Keyed by the context,
  // not c.req.raw: bodyLimit replaces that request.
  const requestIds = new WeakMap<Context, string>();

  app.use("*", async (c, next) => {
    const started = performance.now();
    // Set before anything can answer, so that every answer carries it: a route's, a stream's, onError's.
    const xRequestId = newRequestId();
    c.header("x-request-id", xRequestId);
    requestIds.set(c, xRequestId);
    await next();
    const fault = faults.get(c.req.raw);
    // The path is any caller's, token or not, percent-decoded: its invisible characters escaped for
    // the terminal `cloister proxy` logs to.
    options.log?.(
      stringifyJsonVisibly({
        type: "proxy",
        time: now().toISOString(),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 100) / 100,
        xRequestId,
        ...(fault === undefined ? {} : { fault }),
      }),
    );
  });

  // Inside the log line's middleware, so that a thrown value that is not an Error reaches onError
  // (as a ThrownValue) and the request is logged and answered as any other fault.
  app.use("*", async (_c, next) => {
    try {
      await next();
    } catch (thrown) {
      throw thrown instanceof Error ? thrown : new ThrownValue(thrown);
    }
  });

  app.onError((error, c) => {
    const e = asProxyError(error);
    if (e.status === 500 && !(error instanceof ProxyError) && !(error instanceof ClientError)) {
      faults.set(c.req.raw, faultOf(error));
    }
    if (!e.retry) c.header("x-should-retry", "false");
    // An oversize body is refused unread: this connection cannot carry another request. Say so
    // (node then closes it once the answer is written), or the app reuses it and its next request
    // fails on a socket the server drops (as host/errors.ts and the enclave do).
    if (e.status === 413) c.header("connection", "close");
    if (e.retryAfterSeconds !== undefined) c.header("retry-after", String(e.retryAfterSeconds));
    return c.json(errorBody(e), e.status);
  });
  app.notFound(async (c) => {
    await discardBody(c);
    // An app whose base URL lacks /v1 asks for /chat/completions: say what to change. The origin is
    // the one the app asked when it is a loopback name. loopbackHostOnly checked the Host header, but
    // an absolute-form target (`GET http://other.example/models`) makes the URL's host its own: then
    // the placeholder, never a host the caller chose.
    const asked = new URL(c.req.url);
    const origin = isLoopbackHost(asked.host) ? asked.origin : "http://127.0.0.1:PORT";
    const baseUrlHint = ROUTES_WITHOUT_V1.test(c.req.path)
      ? `: the app's base URL lacks /v1 (OPENAI_BASE_URL=${origin}/v1, as cloister proxy prints it)`
      : "";
    throw new ProxyError(
      404,
      "invalid_request_error",
      "not_found",
      `no such route (expected /v1/models, /v1/models/{id}, /v1/chat/completions, /v1/completions or /healthz)${baseUrlHint}`,
      null,
      false,
    );
  });

  // Before any route: a page rebound to 127.0.0.1 (DNS rebinding) names its own host.
  app.use(
    "*",
    loopbackHostOnly((_c, message) => {
      throw new ProxyError(421, "invalid_request_error", "host_not_loopback", message, null, false);
    }),
  );

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  // Local callers: the proxy's own bearer token, compared in constant time.
  app.use("/v1/*", async (c, next) => {
    const presented = /^Bearer (.+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
    const given = Buffer.from(presented ?? "", "utf8");
    if (given.length !== expectedToken.length || !timingSafeEqual(given, expectedToken)) {
      throw new ProxyError(
        401,
        "authentication_error",
        "invalid_api_key",
        "the proxy's local token is missing or wrong (use the token file cloister proxy printed as the API key)",
        null,
        false,
      );
    }
    await next();
  });
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: PROXY_MAX_BODY_BYTES,
      onError: () => {
        throw new ProxyError(
          413,
          "invalid_request_error",
          "request_too_large",
          `request body: expected at most ${PROXY_MAX_BODY_BYTES} bytes`,
          null,
          false,
        );
      },
    }),
  );

  const modelObject = (id: string) => ({ id, object: "model", created: 0, owned_by: "cloister (attested)" });
  app.get("/v1/models", async (c) =>
    c.json({ object: "list", data: [modelObject((await verifiedModel(session, c.req.raw.signal)).id)] }),
  );
  // The id has a slash ("cloister-dev/tiny.gguf"): sent as it is, or encoded (%2F, as the openai SDK does).
  app.get("/v1/models/:id{.+}", async (c) => {
    const model = (await verifiedModel(session, c.req.raw.signal)).id;
    const id = c.req.param("id");
    if (id !== model) {
      throw modelNotFound(model, id);
    }
    return c.json(modelObject(model));
  });

  /** The attested model as the refusal of a missing `model` names it: by name while the session has one verified. */
  const attestedModelHint = () =>
    session.attested
      ? `the attested model ${JSON.stringify(attestedModelId(session))}`
      : "the attested model GET /v1/models names";

  /**
   * The request's JSON body with `model` a string and `stream` checked. Like the endpoints' own checks
   * of the body, made before the session is verified again (attestedRequestModel): a malformed
   * request is refused as one, not as an outage, and costs no work upstream.
   */
  const readBody = async (c: Context): Promise<{ body: Json; requested: string }> => {
    const body = parseBody(await c.req.text());
    if (body.model === undefined || body.model === null) {
      throw invalid("model", `model: required, expected ${attestedModelHint()}`, "missing_required_parameter");
    }
    if (typeof body.model !== "string") {
      throw invalid("model", `model: expected a string (${attestedModelHint()})`);
    }
    // null is absent, as for every parameter (refuseUnsupported): OpenAI's stream is nullable.
    if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") {
      throw invalid("stream", `stream: expected a boolean, found ${describeFound(body.stream)}`);
    }
    // As OpenAI: stream_options means nothing without stream, so it is refused rather than ignored.
    if (body.stream_options !== undefined && body.stream_options !== null) {
      if (body.stream !== true) throw invalid("stream_options", "stream_options: only allowed when stream is true");
      const streamOptions = objectBody(body.stream_options, "stream_options");
      refuseUnknownKeys(streamOptions, ["include_usage"], "stream_options");
      const includeUsage = streamOptions.include_usage;
      if (includeUsage !== undefined && includeUsage !== null && typeof includeUsage !== "boolean") {
        throw invalid(
          "stream_options.include_usage",
          `stream_options.include_usage: expected a boolean, found ${describeFound(includeUsage)}`,
        );
      }
    }
    return { body, requested: body.model };
  };

  /**
   * The `requested` model checked against the session's last verification (verified again first if
   * that failed), and that model as the SDK checks it again (GenerationOptions.expectModel) against
   * the enclave the request is sealed to, after any re-verification: the answer's `model` is then the
   * one that wrote it.
   */
  const attestedRequestModel = async (
    c: Context,
    requested: string,
  ): Promise<{ model: string; expectModel: ExpectModel }> => {
    const { id: model, expect: expectModel } = await verifiedModel(session, c.req.raw.signal);
    if (requested !== model) throw modelNotFound(model, requested);
    return { model, expectModel };
  };

  const respond = async (
    c: Context,
    kind: "chat" | "text",
    body: Json,
    /** The model the SDK checked the request's enclave serves (attestedRequestModel). */
    model: string,
    events: (signal: AbortSignal) => AsyncGenerator<ChatEvent>,
  ) => {
    const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID().replaceAll("-", "")}`;
    const created = Math.floor(now().getTime() / 1000);
    const object = kind === "chat" ? "chat.completion" : "text_completion";
    const usageOf = (u: { promptTokens: number; completionTokens: number }) => ({
      prompt_tokens: u.promptTokens,
      completion_tokens: u.completionTokens,
      total_tokens: u.promptTokens + u.completionTokens,
    });
    const controller = new AbortController();
    c.req.raw.signal?.addEventListener("abort", () => controller.abort(), { once: true });

    if (body.stream !== true) {
      let text = "";
      for await (const event of events(controller.signal)) {
        if (event.type === "text") {
          text += event.text;
          continue;
        }
        const choice =
          kind === "chat"
            ? {
                index: 0,
                message: { role: "assistant", content: text },
                finish_reason: event.finishReason,
                logprobs: null,
              }
            : { index: 0, text, finish_reason: event.finishReason, logprobs: null };
        return c.json({
          id,
          object,
          created,
          model,
          choices: [choice],
          usage: usageOf(event.usage),
          // An extra field OpenAI clients ignore (see cloisterField).
          cloister: cloisterField(event),
        });
      }
      throw new ClientError("integrity", "STREAM_TRUNCATED", "response ended without a final frame");
    }

    const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    const chunkObject = kind === "chat" ? "chat.completion.chunk" : "text_completion";
    const chunk = (choice: Json, usage: Json | null = null, extra: Json = {}) =>
      JSON.stringify({
        id,
        object: chunkObject,
        created,
        model,
        choices: [choice],
        ...(includeUsage ? { usage } : {}),
        ...extra,
      });
    // Before the first byte goes out, a failure is still an HTTP error: take the first event first.
    const iterator = events(controller.signal)[Symbol.asyncIterator]();
    const first = await iterator.next();
    // Server-sent events, pulled one answer event at a time (backpressure reaches the sealed stream).
    // A failure mid-stream sends an error event and then errors the body, so the HTTP transfer is
    // cut (no final chunk) as well: no client, however it reads SSE, can take the text so far as a
    // whole answer. Each stream's end is logged with its outcome and x-request-id only.
    const encoder = new TextEncoder();
    const sse = (data: string) => encoder.encode(`data: ${data}\n\n`);
    const streamPath = c.req.path;
    const xRequestId = requestIds.get(c);
    const logEnd = (outcome: string) =>
      options.log?.(
        stringifyJsonVisibly({
          type: "proxy-stream",
          time: now().toISOString(),
          path: streamPath,
          xRequestId,
          outcome,
        }),
      );
    let step = first;
    let roleSent = kind !== "chat";
    let failed: unknown = null;
    const stream = new ReadableStream<Uint8Array>({
      async pull(out) {
        if (failed !== null) {
          // Let the error event reach the socket before the transfer is cut (cutting drops what is
          // still buffered).
          await outputFlushed(c);
          // On node:http, cut the connection itself (no final chunk); elsewhere, error the body.
          const outgoing = nodeResponse(c);
          if (outgoing !== undefined) outgoing.destroy();
          else out.error(failed);
          return;
        }
        try {
          if (!roleSent) {
            roleSent = true;
            out.enqueue(sse(chunk({ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null })));
            return;
          }
          if (step.done === true) {
            throw new ClientError("integrity", "STREAM_TRUNCATED", "response ended without a final frame");
          }
          const event = step.value;
          if (event.type === "text") {
            const choice =
              kind === "chat"
                ? { index: 0, delta: { content: event.text }, finish_reason: null }
                : { index: 0, text: event.text, finish_reason: null };
            out.enqueue(sse(chunk(choice)));
            step = await iterator.next();
            return;
          }
          const last =
            kind === "chat"
              ? { index: 0, delta: {}, finish_reason: event.finishReason }
              : { index: 0, text: "", finish_reason: event.finishReason };
          out.enqueue(sse(chunk(last, null, { cloister: cloisterField(event) })));
          if (includeUsage) {
            out.enqueue(
              sse(
                JSON.stringify({ id, object: chunkObject, created, model, choices: [], usage: usageOf(event.usage) }),
              ),
            );
          }
          out.enqueue(sse("[DONE]"));
          out.close();
          logEnd("complete");
        } catch (error) {
          const proxyError = asProxyError(error);
          out.enqueue(sse(JSON.stringify(errorBody(proxyError))));
          failed = new Error("the answer failed mid-stream (see the error event)");
          logEnd(proxyError.code);
        }
      },
      async cancel() {
        // The app went away, or the proxy's stop cut the stream at the end of its grace: stop the
        // sealed stream (its sequence is freed in the enclave).
        controller.abort();
        // Unless the proxy cut the transfer itself after a failure (node then cancels the body): that
        // stream's outcome is already logged, and the app did not leave.
        if (failed === null) logEnd(options.cutting?.aborted === true ? "cut_at_stop" : "client_gone");
        await iterator.return?.(undefined);
      },
    });
    return c.newResponse(stream, 200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
    });
  };

  app.post("/v1/chat/completions", async (c) => {
    const { body, requested } = await readBody(c);
    const messages = chatMessages(body.messages);
    const generation = generationOptions(body, "chat");
    // The SDK's own limits too, before the session is verified again (a bad request stays a 400 in an outage).
    checkRequestArguments({ messages }, generation);
    const { model, expectModel } = await attestedRequestModel(c, requested);
    return respond(c, "chat", body, model, (signal) => session.chat(messages, { ...generation, expectModel, signal }));
  });

  app.post("/v1/completions", async (c) => {
    const { body, requested } = await readBody(c);
    if (typeof body.prompt !== "string") {
      throw invalid(
        "prompt",
        `prompt: expected a string (one prompt per request), found ${describeFound(body.prompt)}`,
      );
    }
    const prompt = body.prompt;
    const generation = generationOptions(body, "completions");
    checkRequestArguments({ prompt }, generation);
    const { model, expectModel } = await attestedRequestModel(c, requested);
    return respond(c, "text", body, model, (signal) =>
      session.completeStream(prompt, { ...generation, expectModel, signal }),
    );
  });

  // A known route with another method: 405 naming the methods it takes (after auth, as any /v1 route).
  const routes: readonly [string, string][] = [
    ["/healthz", "GET, HEAD"],
    ["/v1/models", "GET, HEAD"],
    ["/v1/models/:id{.+}", "GET, HEAD"],
    ["/v1/chat/completions", "POST"],
    ["/v1/completions", "POST"],
  ];
  for (const [path, allow] of routes) {
    app.all(path, async (c) => {
      await discardBody(c);
      c.header("allow", allow);
      throw new ProxyError(
        405,
        "invalid_request_error",
        "method_not_allowed",
        `method ${c.req.method} is not allowed on ${c.req.path} (expected ${allow})`,
        null,
        false,
      );
    });
  }

  return app;
}
