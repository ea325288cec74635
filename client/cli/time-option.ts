/**
 * The --at option's parser. Apart from output.ts, whose other parsers the host's commands use: the
 * host may load no sealed/ module but the routing-header parser (test/sealed/boundary.test.ts),
 * and this one reads its time with sealed/time.ts.
 */
import { InvalidArgumentError } from "commander";
import { readUtcTime } from "../../sealed/time.ts";

/**
 * Commander option parser for a time: ISO-8601 in UTC, `YYYY-MM-DDTHH:MM:SSZ` or with `.sss`
 * milliseconds, nothing else. A time that does not exist (30 February, hour 24) is refused by a
 * round trip, not rolled over (Date reads 2026-02-30 as 2 March); a local time or an offset, which
 * Date would read in this machine's time zone or convert, is refused by its form.
 */
export function timeOption(name: string): (value: string) => Date {
  return (value: string) => {
    const expected = `${name}: expected an ISO-8601 UTC time, YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS.sssZ, found ${JSON.stringify(value)}`;
    const time = readUtcTime(value, "seconds or milliseconds");
    if (time === "form") throw new InvalidArgumentError(expected);
    if (time === "no such time") throw new InvalidArgumentError(`${expected} (no such date or time)`);
    return time;
  };
}
