/**
 * Reading a file whose owner alone may change it (readCheckedFile: the key broker's configuration
 * and release policies, config.ts) or read it (readPrivateKeyFile: the broker's model keys, `cloister
 * model seal --key`, and through client/cli/run-client.ts's readSecretFile the client's API key
 * files, the proxy's --token-file and the secrets `cloister up` reuses; the host's audit collector
 * its `.key` files), checked on the open file itself, and the directories its lookup goes through
 * (attestation/path-safety.ts). node:, attestation/bounded-read.ts and attestation/path-safety.ts
 * only: no CLI code, and the host imports it, so it reaches nothing that opens a sealed message.
 */
import { constants } from "node:fs";
import { type FileHandle, open, readlink } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { fileErrorCause, fileMessage, type InputBound, readHandleText, shellWord } from "../bounded-read.ts";
import { readAfterPathCheck } from "../path-safety.ts";

/** A broker configuration, a key file or a secret refused (and what readCheckedFile refuses). */
export class BrokerConfigError extends Error {
  readonly code = "KBS_CONFIG_INVALID";
}

/**
 * A model key file, read to 64 KiB: one 256-bit key as a JWK (`cloister kbs keygen`), a few hundred
 * bytes with every optional member.
 */
const KEY_FILE_BOUND: InputBound = { bytes: 64 * 1024, expected: "one model key JWK, a few hundred bytes" };

/**
 * readCheckedFile's refusal of `path` (the file of `field`) when it could not be opened, examined
 * or read (ENOENT, EACCES, EIO…), unless its caller words it (`cannotRead`): named as every refusal
 * of a file is (`field path: …`, fileMessage), with its errno and what to do
 * (fileErrorCause), the error kept as cause. For a caller that words only some errors itself.
 */
export function privateFileUnreadable(field: string, path: string): (error: unknown) => BrokerConfigError {
  return (error) =>
    new BrokerConfigError(fileMessage(path, field, `cannot read (${fileErrorCause(error)})`), { cause: error });
}

/**
 * Opens `path` and checks, on the open file itself (no window between the check and the read): a
 * regular file, owned by this user or root (anyone else who owns it can rewrite it), and none of
 * the `forbidden` mode bits. Key files are refused as links (`O_NOFOLLOW`); configuration and policy
 * files may be links, and the file they point to is what is checked. Then read to `bound` and as
 * strict UTF-8 (readHandleText): a larger file or a byte that is not UTF-8 is a BrokerConfigError
 * naming the field, the file and the bound or the byte. Before the open, unless `held` is null, the
 * directories its lookup goes through (readAfterPathCheck): one anyone may write to (no sticky bit)
 * is refused, `held` saying what they could then change, as the client's --policy is.
 */
export function readCheckedFile(
  path: string,
  field: string,
  rule: Parameters<typeof readOpenCheckedFile>[2] & {
    /**
     * What someone who could swap the file would change ("the model keys this broker releases");
     * null: no path check.
     */
    readonly held: string | null;
  },
  uid: number | undefined,
): Promise<string> {
  const read = (opened?: (info: { dev: number; ino: number; nlink: number }) => void) =>
    readOpenCheckedFile(path, field, rule, uid, opened);
  if (rule.held === null) return read();
  return readAfterPathCheck(
    path,
    field,
    rule.held,
    (message, cause) => new BrokerConfigError(message, { cause }),
    read,
  );
}

/** readCheckedFile's open, check of the open file and read. */
async function readOpenCheckedFile(
  path: string,
  field: string,
  rule: {
    readonly forbidden: number;
    readonly noLinks: boolean;
    /**
     * What to do about a file of `mode`, a shell command on `path` (given as one shell word,
     * shellWord: pasted, it runs nothing else; or "on the file at …", fixTarget).
     */
    readonly fix: (mode: string, path: string) => string;
    /**
     * Another user's file is fixed by `chown root` (a file this process only reads and must not be
     * able to rewrite: the broker's configuration and release policies) rather than by `chown` to
     * this user (a key file, which only its owner may read). Either needs root.
     */
    readonly chownRoot?: boolean;
    readonly bound: InputBound;
    /** Words a file that cannot be opened or read (a link aside); by default, BrokerConfigError naming its errno. */
    readonly cannotRead?: ((error: unknown) => Error) | undefined;
    /** The path its refusals name (default `path`): PrivateKeyFileOptions's `name`. */
    readonly name?: string | undefined;
  },
  uid: number | undefined,
  /** readAfterPathCheck's check that the file opened is the one its walk reached. */
  opened?: (info: { dev: number; ino: number; nlink: number }) => void,
): Promise<string> {
  /** Named as `rule.name`, opened as `path`. */
  const named = rule.name ?? path;
  /** The file could not be opened, examined or read: `cannotRead`, or privateFileUnreadable. */
  const unreadable = (error: unknown): Error => {
    const code = (error as NodeJS.ErrnoException).code;
    // Under O_NOFOLLOW, ELOOP is the link refused; with links followed, it is a loop of links.
    if (code === "ELOOP" && rule.noLinks) {
      return new BrokerConfigError(fileMessage(named, field, "a symbolic link; expected the key file itself"), {
        cause: error,
      });
    }
    return (rule.cannotRead ?? privateFileUnreadable(field, named))(error);
  };
  let handle: FileHandle;
  try {
    // Non-blocking: a FIFO is opened at once and refused below as not a regular file, where a
    // blocking open would wait, silently, for a writer (O_NONBLOCK changes nothing for a file).
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | (rule.noLinks ? constants.O_NOFOLLOW : 0));
  } catch (error) {
    throw unreadable(error);
  }
  try {
    const info = await handle.stat().catch((error: unknown) => {
      throw unreadable(error);
    });
    if (!info.isFile()) throw new BrokerConfigError(fileMessage(named, field, "not a regular file"));
    // Every fault of the file in one refusal, each with its fix: its owner, then its mode.
    const faults: string[] = [];
    const owned = uid !== undefined && info.uid !== uid && info.uid !== 0;
    const loose = (info.mode & rule.forbidden) !== 0;
    const fixed = owned || loose ? await fixTarget(handle, path, named) : "";
    if (owned) {
      // Said of a reader that is not root only: root can rewrite root's file.
      const either = uid === 0 ? "" : ", which this user cannot rewrite either";
      const fix = rule.chownRoot === true ? `chown root ${fixed}${either}` : `chown ${uid} ${fixed}`;
      const expected = `expected this user's (uid ${uid}) or root's, since its owner can rewrite it (${fix})`;
      faults.push(`owned by uid ${info.uid}; ${expected}`);
    }
    if (loose) faults.push(rule.fix(`0${(info.mode & 0o777).toString(8)}`, fixed));
    if (faults.length > 0) throw new BrokerConfigError(fileMessage(named, field, faults.join("; also ")));
    // A file that passes its own rule, but reached by another way than the one checked.
    opened?.(info);
    // Worded `field path: …` (fileMessage), as the refusals above and the CLI's option files are.
    const refuse = (message: string) => new BrokerConfigError(message);
    return await readHandleText(handle, named, field, rule.bound, refuse).catch((error: unknown) => {
      throw error instanceof BrokerConfigError ? error : unreadable(error);
    });
  } finally {
    await handle.close();
  }
}

/**
 * What a fix (chmod, chown) of the file checked, open as `handle`, names: `path`, the path opened, as
 * one shell word; for a file opened by another path than the one named (`named`: cloister up's
 * earlier-run secrets, opened through the directory it holds, /proc/self/fd/N/…), the path the file
 * checked resolves to (/proc/self/fd/M of the file), not `named`, which whoever owns a directory above
 * may have made a link to another file since; when it has none (removed), "on the file at" `named`,
 * which is no command to paste.
 */
async function fixTarget(handle: FileHandle, path: string, named: string): Promise<string> {
  if (named === path) return shellWord(path);
  const resolved = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => null);
  if (resolved !== null && isAbsolute(resolved) && !resolved.endsWith(" (deleted)")) return shellWord(resolved);
  return `on the file at ${shellWord(named)}`;
}

/** How readPrivateKeyFile reads: whose file, to what bound, worded how, and whether a link is followed. */
export interface PrivateKeyFileOptions {
  /** The user the file must belong to (default: this process's; root's is accepted too). */
  readonly uid?: number | undefined;
  /** Default: one model key JWK's bound. */
  readonly bound?: InputBound;
  /** Words a file that cannot be opened or read (a link aside); by default, BrokerConfigError naming its errno. */
  readonly cannotRead?: ((error: unknown) => Error) | undefined;
  /**
   * What someone who could swap the file would change, said when a directory its lookup goes through
   * is one anyone may write to (readCheckedFile); null: its path is not checked (a caller that
   * checked the directory itself). Default: "the secret it holds".
   */
  readonly held?: string | null;
  /**
   * Follow a link and check its target (mode, owner, a regular file), as ssh does for an identity
   * file: a client's API key mounted from a Kubernetes secret volume is a link. Default false: the
   * broker's keys and what cloister up wrote itself must be the files themselves.
   */
  readonly followLinks?: boolean;
  /**
   * The path its refusals name, when it is read by another (`cloister up`'s earlier-run secrets, read
   * through the directory it holds open, /proc/self/fd/N/…, named by the path the user gave).
   */
  readonly name?: string | undefined;
}

/**
 * Reads a key file that only its owner can read; refuses shared files (as ssh refuses a loose
 * private key) and, unless `followLinks`, links. Also what `cloister up` reads the secrets of an
 * earlier run with, and the client its API key file, so all say "mode too open" the same way.
 */
export function readPrivateKeyFile(path: string, field: string, options: PrivateKeyFileOptions = {}): Promise<string> {
  return readCheckedFile(
    path,
    field,
    {
      forbidden: 0o077,
      noLinks: options.followLinks !== true,
      fix: (mode, path) => `mode expected 0600 (owner only), found ${mode}; run chmod 600 ${path}`,
      bound: options.bound ?? KEY_FILE_BOUND,
      cannotRead: options.cannotRead,
      name: options.name,
      held: options.held === undefined ? "the secret it holds" : options.held,
    },
    "uid" in options ? options.uid : process.getuid?.(),
  );
}
