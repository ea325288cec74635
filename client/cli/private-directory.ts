/**
 * The directory of files only cloister writes (`cloister up --dir`'s keys, model and policy; the
 * proxy's token in .cloister/), kept out of git: made in the working directory, often an app's own
 * repository, its files must not be committed with the app, nor read by linters that honour
 * .gitignore.
 */
import { randomBytes } from "node:crypto";
import {
  constants,
  type FileHandle,
  lstat,
  mkdir,
  open,
  readlink,
  rename,
  rmdir,
  stat,
  unlink,
} from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { describeFileKind, fileErrorCause, fileMessage, shellWord } from "../../attestation/bounded-read.ts";
import { findUnsafeDirectory, unsafeDirectoryReason, writtenInFault } from "../../attestation/path-safety.ts";
import { closingAfter, UsageError } from "./output.ts";

/** What a private directory holds, as a refusal of one someone else could change names it. */
const PRIVATE_FILES = "the files cloister keeps there (policy, keys, token)";

/**
 * Makes `dir` and its missing parents (mode 0700), each with a `.gitignore` of `*` (0644), as each
 * holds only what cloister puts there; a directory that exists is the user's, left as it is. The
 * directories appear with their `.gitignore` or not at all: made under a temporary name beside the
 * topmost one to make, then renamed into place. So no start ever finds one without it and takes it
 * for the user's, and a failure removes only that temporary tree, never a file another start put in
 * a directory it found made (a token it linked there). Should another start make the same
 * directory meanwhile, that one (with its `.gitignore`) is kept and used; one made meanwhile by
 * anything else and still empty is replaced (rename(2) replaces an empty directory: nothing in it to
 * lose). Every refusal is a UsageError naming `option` and the path, the file system's error as
 * cause: a `.gitignore` that cannot be written names it, a part of the path that is not a directory
 * names that part and what it is, any other failure names `dir` (fileErrorCause: code and the fix).
 * A path someone else could change (findUnsafeDirectory: another user owns it, or others can write to
 * it, or anyone to a directory above it, without the sticky bit) is refused before anything is made.
 *
 * A start killed mid-way leaves its temporary tree (`.name.<hex>.tmp`) beside `dir`; it is left
 * there. Nothing in it or in its name tells a dead start's tree from one a live start (another
 * process, or another host on a shared file system) is filling right now, and removing a live one
 * would make that start fail or rename an empty directory into place without its `.gitignore`
 * guard. A leftover holds only directories and `.gitignore` files, nothing secret: the user may
 * remove it.
 */
export async function makePrivateDirectory(dir: string, option: string): Promise<void> {
  await makeOrFind(dir, option, true);
}

/**
 * makePrivateDirectory's work; `walkFound` false leaves the walk of a directory that existed all
 * along to the caller (holdPrivateDirectory walks it once opened: a walk before would check nothing
 * more). One made, or made meanwhile by another start, is walked here all the same: before anything
 * is made, and before the rest of the path is made in one found.
 */
async function makeOrFind(dir: string, option: string, walkFound: boolean): Promise<void> {
  const target = resolve(dir);
  // Looked for once: what is missing is made below (makeInPlace); an error (a path through a file,
  // EACCES) is worded once the path is checked, as a missing directory's would be.
  const top = await topmostMissing(target).catch((error: unknown) => ({ error }));
  // Whoever else could write to it or a directory above it (or owns it) could swap what cloister
  // keeps there, a policy (the client's trust root) among them: refused before anything is made.
  if (top !== null) await refuseUnsafe(target, option);
  let made: boolean;
  try {
    if (typeof top === "object" && top !== null) throw top.error;
    made = top !== null && (await makeInPlace(target, top, option));
  } catch (error) {
    throw await directoryRefusal(target, option, error);
  }
  // What this call made (renamed into place under its own name, with the directories below it, and
  // found there after the rename: isTheDirectoryMade) is a directory of this user's (0700) in the path
  // just checked: nothing more to check. What it found
  // rather than made must be a directory (or a link to one) too, and as safe as the path was: when
  // it exists, this is the only check; a directory that appeared meanwhile (kept as another start's
  // would be) may be another user's, made between the check above and the rename.
  // The rest of the path below a directory found at `top` (another start's, or swapped in: a link of
  // whoever owns its parent, to anywhere) is made only once that is checked: mkdir follows links.
  if (made) return;
  const refusal = await notDirectoryRefusal(target, option);
  if (refusal !== null) throw refusal;
  if (walkFound || top !== null) await refuseUnsafe(target, option);
  if (top !== null) await makeDirectory(target, option);
}

/** A private directory held open (holdPrivateDirectory): the path to make and write its files by. */
export interface HeldPrivateDirectory {
  /** /proc/self/fd/N on Linux (the directory checked, whatever is at its name later), else its path. */
  readonly path: string;
  close(): Promise<void>;
}

/**
 * makePrivateDirectory (a directory that exists walked here only, once opened), then the directory
 * held open, on Linux, for its caller to write in through
 * /proc/self/fd/N: its name may be in a directory another user owns (root's `cloister up --dir` in
 * their checkout), who may swap it for a link to a directory of theirs at any moment once checked,
 * and root's writes by name would then go where it leads. The directory opened must be this user's
 * or root's, not one anyone may write to, nor a group other than root's or this user's primary one
 * when that is theirs alone, sticky or not (read on the directory opened, fstat: writtenInFault, its
 * fault named), and the directory the walk finds at its name (refuseUnsafe, first: one another user
 * owns is refused in makePrivateDirectory's words; then stat). Elsewhere, or without /proc, its path.
 */
export async function holdPrivateDirectory(dir: string, option: string): Promise<HeldPrivateDirectory> {
  // Elsewhere than Linux nothing is opened, and so walked after: the walk is makePrivateDirectory's.
  const linux = process.platform === "linux";
  await makeOrFind(dir, option, !linux);
  const target = resolve(dir);
  const byName = { path: target, close: async () => {} };
  if (!linux) return byName;
  const handle = await open(target, constants.O_RDONLY | constants.O_DIRECTORY).catch(async (error: unknown) => {
    throw await directoryRefusal(target, option, error);
  });
  try {
    await refuseUnsafe(target, option);
    const held = await handle.stat();
    // The walk's rule of the directory itself (writtenInFault, as findUnsafeDirectory's): this user's
    // or root's, no o+w, no g+w for a group other than root's or this user's primary one when that is
    // theirs alone (a shared one, gid 100 `users`, lets its other members in). Only this read is free
    // of a swap (a link for the open, the directory checked for the walk, the link again for the
    // compare). The sticky bit does not excuse either here: this is the directory written in, where
    // whoever else may write could have put a link of theirs under each name first (/tmp: root's
    // policy written through a link to any file; fs.protected_symlinks and protected_regular are
    // settings, off on some systems).
    const fault = await writtenInFault(held);
    if (fault !== null) {
      const mode = (held.mode & 0o7777).toString(8);
      const owned = `owned by uid ${held.uid}, group ${held.gid}, mode ${mode}`;
      const found = `found one ${faultWords(fault, held.gid)} (${owned})`;
      const expected =
        "expected the directory opened to be the one checked, this user's or root's, only they may write to";
      throw new UsageError(fileMessage(target, option, `${expected}; ${found}`));
    }
    const named = await stat(target).catch(() => null);
    if (named === null || named.dev !== held.dev || named.ino !== held.ino) {
      throw new UsageError(
        fileMessage(target, option, "expected the directory opened to be the one checked, found another"),
      );
    }
    const path = await pinnedPath(handle, held);
    if (path === null) {
      // Only read, and gone by name from here: a close that fails loses nothing.
      await handle.close().catch(() => {});
      return byName;
    }
    return { path, close: () => handle.close() };
  } catch (error) {
    // A close that fails too must not hide the refusal (closingAfter's rule).
    await handle.close().catch(() => {});
    throw error;
  }
}

/** writtenInFault's `fault` of a directory of group `gid`, as "found one …" words it. */
function faultWords(fault: "o" | "g" | "go" | "owner", gid: number): string {
  if (fault === "owner") return "another user owns";
  const group = `group ${gid}`;
  return `${fault === "o" ? "anyone" : fault === "g" ? group : `anyone and ${group}`} may write to`;
}

/**
 * The UsageError for a path `target` someone else could change (findUnsafeDirectory), if it is one.
 * What is used after it is not compared with what it walked (as readAfterPathCheck compares device
 * and inode), on purpose: once walked, only the owner of a directory above it (or a group that may
 * write to one), whom the walk does not hold (path-safety.ts), could rename it or a link on its path
 * and put another there, and the files kept in it are opened by name on every start after this one
 * (`cloister up`, the proxy's token), so they could do it as well later: a compare here would close
 * one moment of a window that stays open. (cloister up writes through the one it holds open and
 * compares: holdPrivateDirectory.)
 */
async function refuseUnsafe(target: string, option: string): Promise<void> {
  const unsafe = await findUnsafeDirectory(target).catch((error: unknown) => {
    throw new UsageError(fileMessage(target, option, `cannot check its path (${fileErrorCause(error, "check")})`), {
      cause: error,
    });
  });
  if (unsafe !== null) {
    throw new UsageError(fileMessage(target, option, unsafeDirectoryReason(unsafe, target, PRIVATE_FILES)));
  }
}

/**
 * Makes `dir` (and missing parents, mode 0700) inside a directory makePrivateDirectory made or
 * found, refusing as it does: a part of the path that is not a directory names that part, any
 * other failure names `dir` (fileErrorCause), the file system's error as cause. Made by `by` when
 * given (the same directory through one held open: holdPrivateDirectory), named `dir` all the same;
 * then, made or found, it must be a directory itself (a symbolic link, even this user's, leads out of
 * the one held: refused) and one only this user or root may write to (writtenInFault, as the
 * directory held is, sticky or not): what is read in it through `by` is not walked (cloister up's
 * earlier-run keys, held: null), and whoever else may write there could swap a key or put a link
 * under the name of one written.
 */
export async function makeDirectory(dir: string, option: string, by?: string): Promise<void> {
  const target = resolve(dir);
  try {
    await mkdir(by ?? target, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw await directoryRefusal(target, option, error);
  }
  if (by === undefined) return;
  // Not followed: a link here leads out of the directory held, and what is read in it through `by`
  // (unwalked) would go wherever its target's path leads by then (a directory of root's in another
  // user's checkout, renamed away and replaced by theirs once checked).
  const found = await lstat(by).catch(async (error: unknown) => {
    throw await directoryRefusal(target, option, error);
  });
  if (!found.isDirectory()) {
    throw new UsageError(
      fileMessage(
        target,
        option,
        `expected a directory of its own, not a link to one; found ${describeFileKind(found)}`,
      ),
    );
  }
  const fault = await writtenInFault(found);
  if (fault !== null) {
    const owned = `owned by uid ${found.uid}, group ${found.gid}, mode ${(found.mode & 0o7777).toString(8)}`;
    const expected = "expected a directory only this user or root may write to";
    throw new UsageError(
      fileMessage(target, option, `${expected}; found one ${faultWords(fault, found.gid)} (${owned})`),
    );
  }
}

/** The UsageError for `error`, met making directory `target` (one already a UsageError is kept). */
async function directoryRefusal(target: string, option: string, error: unknown): Promise<UsageError> {
  if (error instanceof UsageError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  // ENOENT: a part of the path may be a symbolic link to a missing directory (notDirectoryRefusal).
  const wordable = code === "EEXIST" || code === "ENOTDIR" || code === "ENOENT";
  const refusal = wordable ? await notDirectoryRefusal(target, option, error) : null;
  return (
    refusal ??
    new UsageError(fileMessage(target, option, `cannot create the directory (${fileErrorCause(error, "write")})`), {
      cause: error,
    })
  );
}

/**
 * makePrivateDirectory's work, `top` the topmost directory of `target` missing (topmostMissing):
 * whether this call made it (false: another start, or anything else, made it meanwhile: kept; or
 * the tree renamed into place is not the one made, swapped in between by whoever may write to its
 * directory: checked as one found, and the rest of `target` made only then, by the caller); the file
 * system's errors are worded by the caller.
 */
async function makeInPlace(target: string, top: string, option: string): Promise<boolean> {
  const temporary = join(dirname(top), `.${basename(top)}.${randomBytes(6).toString("hex")}.tmp`);
  // From the topmost down to `dir`, each as it will be named once in place, and as named in the tree.
  const below = target === top ? [] : relative(top, target).split(sep);
  const inTree = ["", ...below.map((_, i) => join(...below.slice(0, i + 1)))];
  // What this call made in the tree (names in it, a directory's before what is made in it).
  const made: { name: string; directory: boolean }[] = [];
  let held: HeldDirectory | null = null;
  let renamed = false;
  try {
    await mkdir(temporary, { mode: 0o700 });
    held = await holdDirectory(temporary);
    // Opened by name: whoever owns the directory it is in may have put a directory of theirs there
    // since the mkdir, in which they could swap what is made below for a link to anywhere. Only this
    // user (or root) can make one this user owns.
    const user = process.getuid?.() ?? null;
    if (user !== null && held.made.uid !== user) {
      const found = `found one owned by uid ${held.made.uid}`;
      const reason = `cannot create the directory: expected its temporary directory ${temporary} to be the one made`;
      throw new UsageError(fileMessage(top, option, `${reason}, ${found}`));
    }
    for (const name of inTree) {
      const path = join(top, name);
      if (name !== "") {
        await mkdir(join(held.path, name), { mode: 0o700 });
        made.push({ name, directory: true });
      }
      const ignore = join(name, ".gitignore");
      try {
        await writeIgnore(join(held.path, ignore));
        made.push({ name: ignore, directory: false });
      } catch (error) {
        const reason = `cannot create its .gitignore (${fileErrorCause(error, "write")})`;
        throw new UsageError(fileMessage(path, option, reason), { cause: error });
      }
    }
    try {
      await rename(temporary, top);
      renamed = true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Another start made it first (with its .gitignore): that one is kept, checked as one found,
      // and the rest made in it once checked (makePrivateDirectory).
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
      return false;
    }
    // Another tree (swapped in before the rename) is checked as one found, likewise.
    return await isTheDirectoryMade(top, held.made);
  } finally {
    // Only what this call made in the tree, and only while it is not renamed into place: the name is
    // in a directory another user may own, who may put a tree of theirs under it (free again once
    // renamed), or swap it for a link (removals by name would follow it: their .gitignore removed).
    // Deepest first, in the directory held (holdDirectory); rmdir removes an empty directory only.
    if (!renamed && held !== null) {
      for (const { name, directory } of made.reverse()) {
        await (directory ? rmdir : unlink)(join(held.path, name)).catch(() => {});
      }
      // The tree's own name, by name (no other way): whatever is there is in a directory whose owner
      // put it there, and only an empty directory is removed.
      await rmdir(temporary).catch(() => {});
    }
    // Only read: a close that fails loses nothing, and must not hide the outcome.
    await held?.handle?.close().catch(() => {});
  }
}

/**
 * The temporary tree's directory as made (`made`: its status, taken on the directory opened), and
 * the path to make its contents by (`path`). On Linux, the directory is held open (O_NOFOLLOW: not a
 * link swapped in for it) and its contents are made through /proc/self/fd/N, which leads to that
 * directory whatever is renamed or linked at its name meanwhile: whoever owns the directory it is in
 * (root's `cloister up` in another user's checkout) can then make nothing of root's appear, nor
 * anything be removed, anywhere else. Elsewhere (no such path: macOS's /dev/fd/N is no directory,
 * Node has no mkdirat), or without /proc, by its name, which that owner could swap for a link.
 */
interface HeldDirectory {
  readonly handle: FileHandle | null;
  readonly path: string;
  readonly made: { dev: number; ino: number; uid: number };
}

async function holdDirectory(temporary: string): Promise<HeldDirectory> {
  if (process.platform !== "linux") return { handle: null, path: temporary, made: await lstat(temporary) };
  const handle = await open(temporary, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    const made = await handle.stat();
    return { handle, path: (await pinnedPath(handle, made)) ?? temporary, made };
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

/**
 * The path that leads to directory (or file) `handle` (`opened`: its status, read on it) whatever is
 * at its name later, /proc/self/fd/N, when it leads there (the same device and inode); null without
 * /proc (or one that leads elsewhere): the caller goes by name.
 */
export async function pinnedPath(handle: FileHandle, opened: { dev: number; ino: number }): Promise<string | null> {
  const path = `/proc/self/fd/${handle.fd}`;
  const reached = await stat(path).catch(() => null);
  return reached !== null && reached.dev === opened.dev && reached.ino === opened.ino ? path : null;
}

/**
 * Writes a new `.gitignore` of `*` at `path`, mode 0644 whatever the umask (anyone may read it).
 * Its mode is set on the file opened (fchmod), never by name again: whoever owns or may write to the
 * temporary tree's directory could swap the tree for a link of theirs meanwhile, and a chmod by name
 * would follow it to any file (their `.gitignore` a link to /etc/shadow, made readable by root's run).
 * The first error is thrown (closingAfter: a close that fails too does not hide a failed chmod or
 * write; one that fails after them is thrown, the file not known to be on disk), and the file this
 * call created is removed again (`path` is in the tree held: makeInPlace), so that the tree it is
 * in can be removed too.
 */
async function writeIgnore(path: string): Promise<void> {
  const handle = await open(path, "wx", 0o644);
  try {
    await closingAfter(handle, async () => {
      await handle.chmod(0o644);
      await handle.writeFile("*\n");
    });
  } catch (error) {
    await unlink(path).catch(() => {});
    throw error;
  }
}

/**
 * Whether `path` is the directory `made` (its status right after mkdir): a directory, not a link, of
 * this user's (where there are POSIX owners), of the same device and inode.
 */
async function isTheDirectoryMade(path: string, made: { dev: number; ino: number; uid: number }): Promise<boolean> {
  const found = await lstat(path).catch(() => null);
  if (found === null || !found.isDirectory()) return false;
  const user = process.getuid?.() ?? null;
  if (user !== null && (found.uid !== user || made.uid !== user)) return false;
  return found.dev === made.dev && found.ino === made.ino;
}

/** The topmost directory of `target` (itself included) that does not exist, or null when it exists. */
async function topmostMissing(target: string): Promise<string | null> {
  let missing: string | null = null;
  for (let path = target; ; path = dirname(path)) {
    try {
      await lstat(path);
      return missing;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || dirname(path) === path) throw error;
      missing = path;
    }
  }
}

/**
 * The refusal of the first part of `target`'s path, from the root down, that exists and is not a
 * directory, or is a symbolic link to nothing: lstat takes it as there (topmostMissing), so nothing
 * would be made in its place, and what is made below it fails as a path through a file (ENOTDIR) or a
 * missing directory (ENOENT), or nothing is made at all (`--dir` the link itself).
 */
async function notDirectoryRefusal(target: string, option: string, cause?: unknown): Promise<UsageError | null> {
  const parts: string[] = [];
  for (let path = target; ; path = dirname(path)) {
    parts.unshift(path);
    if (dirname(path) === path) break;
  }
  const refusal = (path: string, found: string, fix: string) =>
    new UsageError(
      fileMessage(
        target,
        option,
        `cannot create the directory: expected ${path} to be a directory, found ${found}; ${fix}`,
      ),
      { cause },
    );
  for (const path of parts) {
    const info = await stat(path).catch(() => null);
    if (info === null) {
      const leads = await danglingLinkTarget(path);
      if (leads === null) return null;
      const make = `make the directory it leads to (mkdir -p ${shellWord(leads)})`;
      return refusal(
        path,
        `a symbolic link to a missing ${leads}`,
        `${make}, or remove the link, or choose another path`,
      );
    }
    if (!info.isDirectory()) {
      return refusal(
        path,
        info.isFile() ? "a regular file" : describeFileKind(info),
        "remove it or choose another path",
      );
    }
  }
  return null;
}

/**
 * Where `path` leads when it is a symbolic link to nothing (stat: ENOENT), or null: the missing
 * directory a `mkdir -p` of it makes, found as the kernel looks it up (missingPart).
 */
async function danglingLinkTarget(path: string): Promise<string | null> {
  const info = await lstat(path).catch(() => null);
  if (info === null || !info.isSymbolicLink()) return null;
  if ((await stat(path).catch((error: unknown) => (error as NodeJS.ErrnoException).code)) !== "ENOENT") return null;
  return missingPart(path).catch(() => null);
}

/** As many links as Linux follows in one lookup before ELOOP. */
const MAX_LINKS = 40;

/**
 * The first name of absolute `path` that does not exist, as the kernel looks it up (each link
 * followed to its end, a relative text from the link's real directory, a `..` leaving the real
 * directory reached), with the names after it; null when it all exists or meets a file.
 */
async function missingPart(path: string): Promise<string | null> {
  const names = path.split(sep).filter((name) => name !== "" && name !== ".");
  let current: string = sep;
  for (let links = 0, name = names.shift(); name !== undefined && links <= MAX_LINKS; name = names.shift()) {
    if (name === "..") {
      current = dirname(current);
      continue;
    }
    const next = join(current, name);
    const info = await lstat(next).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    });
    // The rest as named (a `..` in it is mkdir -p's to take after the names before it are made).
    if (info === null) return [next, ...names].join(sep);
    if (info.isSymbolicLink()) {
      links += 1;
      const text = await readlink(next);
      if (isAbsolute(text)) current = sep;
      names.unshift(...text.split(sep).filter((part) => part !== "" && part !== "."));
      continue;
    }
    if (!info.isDirectory()) return null;
    current = next;
  }
  return null;
}
