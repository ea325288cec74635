/**
 * Strict UTC times: one ISO-8601 form, given by the caller, and only times that exist in it. Date
 * alone is no check: it takes "1" as a year, a date alone, a local time or an offset, and rolls a
 * time that does not exist (February 30, hour 24, second 60) on to another. Here the form is
 * matched first, then the time must come back unchanged through Date#toISOString. Years are
 * 0000-9999 (the four digits toISOString writes). Imports nothing, so sealed/ (receipts), the
 * attestation code (Intel's collateral) and the CLI (--at) share it.
 */

/** `seconds`: YYYY-MM-DDTHH:MM:SSZ; `milliseconds`: YYYY-MM-DDTHH:MM:SS.sssZ, as toISOString writes. */
export type UtcTimeForm = "seconds" | "milliseconds" | "seconds or milliseconds";

const FORMS: Readonly<Record<UtcTimeForm, RegExp>> = {
  seconds: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/,
  milliseconds: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/,
  "seconds or milliseconds": /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/,
};

/**
 * `value` read as a time in `form`, or why not: "form" when it is not in that form (or not a
 * string), "no such time" when it is but Date would roll it over.
 */
export function readUtcTime(value: unknown, form: UtcTimeForm): Date | "form" | "no such time" {
  if (typeof value !== "string" || !FORMS[form].test(value)) return "form";
  const time = new Date(value);
  const roundTrip = Number.isNaN(time.getTime()) ? "" : time.toISOString();
  // The seconds form is 20 characters; toISOString always writes the milliseconds.
  return roundTrip === (value.length === 20 ? `${value.slice(0, 19)}.000Z` : value) ? time : "no such time";
}

/** Whether `value` is a time in `form` that exists. */
export function isUtcTime(value: unknown, form: UtcTimeForm): value is string {
  return readUtcTime(value, form) instanceof Date;
}
