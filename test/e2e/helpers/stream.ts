/** Runs a streamed answer to its end and reports what the caller would have been shown. */
import { ClientError } from "../../../client/errors.ts";
import type { ChatEvent } from "../../../client/sdk.ts";
import { rejectionOf } from "../../helpers/rejections.ts";

export interface Drained {
  readonly text: string;
  readonly events: readonly ChatEvent[];
  /** The `done` event, if the iterator ever yielded one. */
  readonly done: Extract<ChatEvent, { type: "done" }> | undefined;
  /** What the iterator threw, if anything. */
  readonly error: unknown;
}

export async function drain(stream: AsyncIterable<ChatEvent>): Promise<Drained> {
  const events: ChatEvent[] = [];
  let error: unknown;
  try {
    for await (const event of stream) events.push(event);
  } catch (thrown) {
    error = thrown;
  }
  const done = events.find((e): e is Extract<ChatEvent, { type: "done" }> => e.type === "done");
  const text = events.map((e) => (e.type === "text" ? e.text : "")).join("");
  return { text, events, done, error };
}

/** The ClientError a promise rejects with (fails when it resolves or rejects with something else). */
export function clientErrorOf(promise: Promise<unknown>): Promise<ClientError> {
  return rejectionOf(promise, ClientError);
}
