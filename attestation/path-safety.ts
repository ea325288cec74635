/**
 * Whether someone else could change what a directory's path leads to: whoever can write to a
 * directory on the path can rename what is below aside and put their own in its place. Used for
 * the host's `--audit-dir` (its logs are the evidence) and the client's private directories
 * (`cloister up --dir`'s policy and keys, the proxy's token in .cloister/: a swapped policy is a
 * swapped trust root).
 *
 * The rule, as OpenSSH's StrictModes asks of `authorized_keys` for the directory itself: it is
 * owned by root or by this process's user and, unless it has the sticky bit (as /tmp has: then only
 * a name's owner may rename or remove it), others cannot write to it (no o+w), nor can a group other
 * than root's or this process's own (g+w is taken when its group is root's, or this user's primary
 * group when that group is this user's alone: the user-private group that umask 002 leaves writable
 * on many Linux systems, as Debian's OpenSSH allows; see primaryGroupIsPrivate). Every
 * directory above it, up to `/`, must be one anyone cannot write to (no o+w without the sticky bit);
 * their owners and groups are not held to more: root working in a checkout another user made under
 * umask 002 (a container over a bind mount, a `sudo` run) keeps `cloister up`'s files and audit logs
 * there, and that user can swap the checkout's code as much (git's own ownership check is of the
 * repository's directory, not the ones above it). Every directory a name is looked up in, links
 * followed as the kernel does (a `..` after a link leaves the link's target, not the link's
 * directory), counts, and the real path's. Where there are no POSIX owners
 * (Windows) nothing is checked.
 */
import { type FileHandle, lstat, open, readlink, realpath, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve, sep } from "node:path";
import { fileErrorCause, fileMessage, readHandleToBound, shellWord } from "./bounded-read.ts";

/** A directory on a path that someone else could change (findUnsafeDirectory). */
export interface UnsafeDirectory {
  /** Its real path. */
  readonly path: string;
  /** Whether it is the directory asked about itself rather than one above it. */
  readonly itself: boolean;
  /** Its permission bits and the sticky bit (mode & 0o7777). */
  readonly mode: number;
  /** Who else may write to it (`o`, `g` or `go`), or null when what is wrong is its owner. */
  readonly writers: "o" | "g" | "go" | null;
  /** Its owner's uid. */
  readonly uid: number;
  /** Its group's gid. */
  readonly gid: number;
  /** This process's uid. */
  readonly user: number;
  /** A file's (`itself`, `writers` set): it is another user's as well, one refusal for both faults. */
  readonly alsoOwner?: boolean;
  /**
   * Set when what is at fault is a symbolic link followed on the way (`path` the link, `uid` its
   * owner, `mode` and `gid` its directory's): owned by another user who may replace it (linkFault).
   */
  readonly link?: { readonly dirUid: number };
}

/**
 * This process's user as the rules see it: its uid, its primary group's gid, and that gid when the
 * group is its alone (primaryGroupIsPrivate), else null (a shared group's write counts as another's):
 * asked only of a group-writable directory or file of that group, and the account files then read
 * once (per walk: a walk's User is made anew, as the files may change between walks).
 */
interface User {
  readonly uid: number;
  readonly gid: number;
  privateGid(): Promise<number | null>;
}

/**
 * This process's user as readAfterPathCheck's walk found it, for its reader's unsafeOpenFile (its
 * account files read at most once).
 */
export type PathUser = User;

/** This process's User (process.getuid and getgid present: a POSIX system). */
function currentUser(getuid: () => number, getgid: () => number): User {
  const [uid, gid] = [getuid(), getgid()];
  // Root's group is taken anyway (directoryFault): nothing to read.
  if (gid === 0) return { uid, gid, privateGid: async () => 0 };
  let known: Promise<number | null> | undefined;
  const privateGid = () => {
    known ??= primaryGroupIsPrivate(uid, gid).then((alone) => (alone ? gid : null));
    return known;
  };
  return { uid, gid, privateGid };
}

/**
 * The account databases primaryGroupIsPrivate reads: the system's, fixed (tests pass it scratch
 * files, or redirect these paths where they open files).
 */
const ACCOUNT_FILES: { readonly passwd: string; readonly group: string } = Object.freeze({
  passwd: "/etc/passwd",
  group: "/etc/group",
});

/** The most of an account database read (a larger one is not understood: a group taken as shared). */
const ACCOUNT_FILE_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Whether group `gid` is user `uid`'s alone, so that its write bit gives no one else a way in (as
 * Debian's OpenSSH user-group-modes asks before it allows a group-writable `authorized_keys`):
 * `files.group` has an entry of that gid and none lists a member other than a name of `uid`'s, and
 * no `files.passwd` entry of another uid has it as primary group. Fails closed, false whenever
 * unsure: a file that cannot be read or is larger than 16 MiB, a line not understood (NIS `+`/`-`
 * entries among them, well formed or not), no passwd entry of `uid`, a name of `uid`'s another uid
 * holds too, no group entry of `gid` (a group only a directory service knows: its members cannot be
 * seen here), a commented-out entry that would deny it (musl reads it as one). Names are compared
 * byte for byte. A shared primary group (gid 100 `users` under USERGROUPS=no) is so refused: its
 * other members could rewrite a policy it may write to.
 */
export async function primaryGroupIsPrivate(
  uid: number,
  gid: number,
  files: { readonly passwd: string; readonly group: string } = ACCOUNT_FILES,
): Promise<boolean> {
  const [passwd, group] = await Promise.all([accountEntries(files.passwd, 7), accountEntries(files.group, 4)]);
  if (passwd === null || group === null) return false;
  const names = new Set(passwd.entries.filter((entry) => Number(entry[2]) === uid).map((entry) => entry[0]));
  if (names.size === 0) return false;
  // Commented-out entries count against it, never for it (see accountEntries).
  const others = [...passwd.entries, ...passwd.commented].filter((entry) => Number(entry[2]) !== uid);
  // Another uid's primary group; or a name of the user's another uid holds too (initgroups by that
  // name, as login gives that uid its groups, would give them a group listing it).
  if (others.some((entry) => Number(entry[3]) === gid || names.has(entry[0] ?? ""))) return false;
  const ofGid = (entries: string[][]) => entries.filter((entry) => Number(entry[2]) === gid);
  const listed = [...ofGid(group.entries), ...ofGid(group.commented)];
  const members = listed.flatMap((entry) => (entry[3] ?? "").split(",").filter((name) => name !== ""));
  return ofGid(group.entries).length > 0 && members.every((name) => names.has(name));
}

/**
 * The colon-separated entries of account database `path` (`fields` per line, the third and, for
 * passwd, the fourth decimal ids), empty lines passed over; null when it cannot be read, is larger
 * than ACCOUNT_FILE_MAX_BYTES or holds a line otherwise. A line starting with `#` is a comment to
 * glibc but an entry to musl (node:alpine images: `#bob` a user like any other): one that reads as
 * an entry is `commented`, held against a group by primaryGroupIsPrivate and never for it; any
 * other is passed over.
 */
async function accountEntries(
  path: string,
  fields: number,
): Promise<{ entries: string[][]; commented: string[][] } | null> {
  let bytes: Buffer;
  try {
    const handle = await open(path, "r");
    try {
      bytes = await readHandleToBound(handle, ACCOUNT_FILE_MAX_BYTES);
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
  if (bytes.length > ACCOUNT_FILE_MAX_BYTES) return null;
  // Byte for byte (latin1: one character a byte): names that are not UTF-8 stay apart, where a loose
  // decoding makes each bad sequence U+FFFD and another user's name equal to this user's.
  const lines = bytes.toString("latin1").split("\n");
  const entries = lines.filter((line) => line.trim() !== "" && !line.startsWith("#"));
  const comments = lines.filter((line) => line.startsWith("#")).map((line) => line.split(":"));
  const id = /^\d+$/;
  // A line of NIS compat (`+name`, `-name`, `+@netgroup`), its fields well formed or not, is not
  // understood: under nsswitch "compat" the entry (members and all) is NIS's, not the line's.
  const understood = (entry: string[]) =>
    !/^[+-]/.test(entry[0] ?? "") &&
    entry.length === fields &&
    id.test(entry[2] ?? "") &&
    (fields !== 7 || id.test(entry[3] ?? ""));
  const split = entries.map((line) => line.split(":"));
  return split.every(understood) ? { entries: split, commented: comments.filter(understood) } : null;
}

/**
 * What is wrong with a directory of `info` for a process of `user`: who else may write to it, its
 * owner, or nothing.
 */
async function directoryFault(
  info: { mode: number; uid: number; gid: number },
  user: User,
): Promise<"o" | "g" | "go" | "owner" | null> {
  if ((info.mode & 0o1000) === 0) {
    const others = (info.mode & 0o002) !== 0;
    // The account files are read only for a group-writable one of the user's primary group: any
    // other group (root's aside) is another's whether or not the user's is its alone.
    const group =
      (info.mode & 0o020) !== 0 && info.gid !== 0 && (info.gid !== user.gid || (await user.privateGid()) !== info.gid);
    if (others || group) return others && group ? "go" : others ? "o" : "g";
  }
  return info.uid !== 0 && info.uid !== user.uid ? "owner" : null;
}

/**
 * What is wrong with a file of `info` (its owner, who else may write to it) for a process of `user`,
 * by the rule of a directory itself, the sticky bit aside (it means nothing on a file).
 */
function fileFault(info: { mode: number; uid: number; gid: number }, user: User) {
  return directoryFault({ uid: info.uid, gid: info.gid, mode: info.mode & ~0o1000 }, user);
}

/**
 * What is wrong with a directory opened to be written in (`info` its fstat) for this process, by the
 * rule of a directory itself, the sticky bit aside (whoever else may write there could have put a link
 * under each name first): its owner, who else may write to it, or nothing (or null off POSIX).
 */
export async function writtenInFault(info: { mode: number; uid: number; gid: number }) {
  if (process.getuid === undefined || process.getgid === undefined) return null;
  return fileFault(info, currentUser(process.getuid, process.getgid));
}

/**
 * Whether a symbolic link of owner `linkUid`, in a directory of `dir`, could be replaced by someone
 * other than root or `user`: as Linux's fs.protected_symlinks reasons (stricter: the kernel guards
 * sticky world-writable directories only, and trusts a link its directory's owner owns), a link is
 * trusted when its owner is, or when its owner can no longer change it. So a link is followed when
 * it is root's or this user's, or when its directory is one only root or this user may write to
 * (owned by one of them, no o+w, no g+w for a group other than root's or this user's private one:
 * the sticky bit aside, which leaves a link's owner free to replace it). Otherwise (alice's link in alice's
 * directory, read by root) its owner could point it at any file this user may read: an ssh key of
 * root's sent as the API key, another policy trusted.
 */
async function linkFault(
  linkUid: number,
  dir: { mode: number; uid: number; gid: number },
  user: User,
): Promise<boolean> {
  if (linkUid === 0 || linkUid === user.uid) return false;
  return (await directoryFault({ uid: dir.uid, gid: dir.gid, mode: dir.mode & ~0o1000 }, user)) !== null;
}

/**
 * The first directory, from `dir` up to `/`, that someone else could change (see above), or null.
 * A part of the path that does not exist yet is passed over (nothing to swap there yet: whoever
 * makes it owns it); an error other than a missing part is thrown.
 */
export async function findUnsafeDirectory(dir: string): Promise<UnsafeDirectory | null> {
  return (await walk(dir, "directory")).unsafe;
}

/** What the walk of a path found: what someone else could change, and what file it reached (Checked). */
interface Walked {
  readonly unsafe: UnsafeDirectory | null;
  readonly reached: Checked;
  /** This process's user as the walk held it (null where nothing is checked). */
  readonly user: User | null;
}

/**
 * The directory holding the name a walk reached, when the file has more than one name (hard links)
 * and the directory is another user's (neither root's nor this user's): where hard links to files
 * one does not own are allowed (Linux with fs.protected_hardlinks=0, macOS), that user could have
 * linked a file of root's or this user's there (a host key they cannot read), which passes the
 * file's own rule. A file of one name there is theirs to replace only (its own rule, and the open's
 * device and inode, see to that). Narrow on purpose: a directory of root's a group may write to
 * (/nix/store, root:nixbld 1775, whose files auto-optimise-store hard-links) is not held to it, nor
 * is /tmp; a directory anyone may write to is refused anyway (readAfterPathCheck).
 */
interface SharedName {
  readonly path: string;
  readonly uid: number;
  readonly mode: number;
  readonly user: number;
}

/**
 * The file a walk reached (its device and inode, from the look at the last name), none (`missing`:
 * nothing there yet), or an anonymous pipe (`pipe`: a /proc/self/fd link to `pipe:[inode]`, no
 * name to swap); `unchecked` where nothing is checked (no POSIX owners).
 */
type Checked = { dev: number; ino: number; nlink?: number; holder?: string } | "missing" | "pipe" | "unchecked";

/**
 * What someone else could change on the path `dir` (findUnsafeDirectory's answer), and which file the
 * walk reached: what its reader's open must reach too. `kind`: `directory`, the path leads to a
 * directory held to the rule of a directory itself; `directories`, to a file its reader checks itself
 * on the open file (unsafeOpenFile): only the directories its lookup goes through are checked.
 */
async function walk(dir: string, kind: "directory" | "directories"): Promise<Walked> {
  if (process.getuid === undefined || process.getgid === undefined) {
    return { unsafe: null, reached: "unchecked", user: null };
  }
  const user = currentUser(process.getuid, process.getgid);
  // Made absolute without resolving `..` lexically (path.resolve would): the kernel takes a `..`
  // after a link from the link's target, and lookUp does as it does, so what is checked is what the
  // caller's open or mkdir of `dir` reaches (the working directory's path is its real one).
  const { target, lookedIn, link, reached } = await lookUp(
    isAbsolute(dir) ? dir : `${process.cwd()}${sep}${dir}`,
    user,
  );
  const checked = new Set<string>();
  // The real path, then each directory a name was looked up in (the last first), and all above
  // each. Bounded by the lookups (each walk stops at `/` or at a directory already checked, whose
  // ancestors were checked with it).
  for (const start of [...(target === null ? [] : [target]), ...lookedIn.reverse()]) {
    for (let path: string | null = start; path !== null && !checked.has(path); path = parent(path)) {
      checked.add(path);
      if (path === target && kind === "directories") continue;
      const info = await stat(path);
      // Above it, only "anyone can write to it" (see above): no group asked about.
      const fault =
        path === target ? await directoryFault(info, user) : (info.mode & 0o1002) === 0o002 ? ("o" as const) : null;
      if (fault !== null) {
        const writers = fault === "owner" ? null : fault;
        const { uid, gid } = info;
        const unsafe = { path, itself: path === target, mode: info.mode & 0o7777, writers, uid, gid, user: user.uid };
        return { unsafe, reached, user };
      }
    }
  }
  return { unsafe: link, reached, user };
}

/** SharedName for what a walk `reached`, or null. */
async function sharedName(reached: Checked): Promise<SharedName | null> {
  if (typeof reached !== "object" || reached.holder === undefined || (reached.nlink ?? 1) <= 1) return null;
  // A reached file (not "unchecked") means a walk with POSIX owners.
  const user = process.getuid?.() ?? 0;
  const dir = await stat(reached.holder);
  if (dir.uid === 0 || dir.uid === user) return null;
  return { path: reached.holder, uid: dir.uid, mode: dir.mode & 0o7777, user };
}

/**
 * What someone else could change about a file read as a trust anchor (the client's `--policy`) or a
 * secret (an API key, the proxy's token), already open (`handle`, `file` the name it was opened by,
 * `info` its fstat: the reader's own, so the open file is looked at once), or null. It is held to
 * the rule of a directory itself, the sticky bit aside (it means nothing on a file): owned by root
 * or this user (its owner can rewrite it: OpenSSH's StrictModes asks as much of `authorized_keys`,
 * and the key broker of its policies, attestation/kbs/key-file.ts), no o+w, no g+w unless its group
 * is root's or this user's primary group and that group is theirs alone. Checked on what is read,
 * as a name checked before the open could lead to another file by then (a directory on its path may
 * be another user's: see above). A named pipe is held as a file (a writer feeds it); an anonymous
 * one (`<(…)`, `cat policy.json | sudo cloister … /dev/stdin`: its owner is the shell that made
 * it) is passed over: what it carries is what its invoker chose to write to it, and it has no name
 * to swap. It is told apart on the open file (Linux's /proc/self/fd names it `pipe:[inode]`);
 * without /proc, it is held as a named one. Anything else (a device: /dev/null is 0666) is its
 * reader's to refuse as what it is, not here by its mode. `walked`: this process's user as
 * readAfterPathCheck's walk found it (its account files then read at most once); read here without
 * it.
 */
export async function unsafeOpenFile(
  handle: FileHandle,
  file: string,
  info: { mode: number; uid: number; gid: number; isFile(): boolean; isFIFO(): boolean },
  walked?: PathUser,
): Promise<UnsafeDirectory | null> {
  if (process.getuid === undefined || process.getgid === undefined) return null;
  if (!info.isFile() && !info.isFIFO()) return null;
  if (info.isFIFO() && (await readlink(`/proc/self/fd/${handle.fd}`).catch(() => "")).startsWith("pipe:")) return null;
  const user = walked ?? currentUser(process.getuid, process.getgid);
  const fault = await fileFault(info, user);
  if (fault === null) return null;
  const writers = fault === "owner" ? null : fault;
  const { uid, gid } = info;
  const alsoOwner = foreignOwner(info, user, writers);
  return { path: file, itself: true, mode: info.mode & 0o7777, writers, uid, gid, user: user.uid, alsoOwner };
}

/** Whether a file others may write to (`writers`) is another user's as well (fileFault names the writers first). */
function foreignOwner(info: { uid: number }, user: { uid: number }, writers: string | null): boolean {
  return writers !== null && info.uid !== 0 && info.uid !== user.uid;
}

/**
 * `read()` of a file whose path is checked first (the directories its lookup goes through: its
 * reader checks the file itself on what it opens, unsafeOpenFile): `refuse`d, naming `field` and the
 * file, when anyone may write to a directory its lookup goes through (without the sticky bit), or a
 * link on it could be replaced by another user (linkFault), `held` saying what they would then
 * change. One walk
 * of the path, before the read; a file that does not exist is left to the read to say so. A walk
 * that fails (ELOOP, EACCES) leaves the read to word the same errno as it words it; should the read
 * succeed, the file is refused all the same (its path could not be checked). `read` is given this
 * process's user as the walk held it (none when the walk failed), for its unsafeOpenFile.
 */
export async function readAfterPathCheck<T>(
  path: string,
  field: string,
  held: string,
  refuse: (message: string, cause?: unknown) => Error,
  read: (opened: (info: { dev: number; ino: number; nlink: number }) => void, user?: PathUser) => Promise<T>,
): Promise<T> {
  // The file reached has other names and its name's directory is another user's (SharedName): a
  // file's reader's question only, asked here rather than of every walk (a directory's nlink is 2
  // or more on most file systems, so findUnsafeDirectory's walks looked at the holder for nothing).
  const walked = await walk(path, "directories")
    .then(async ({ unsafe, reached, user }) => ({ unsafe, reached, user, shared: await sharedName(reached) }))
    .then(
      ({ unsafe, reached, user, shared }) => ({ unsafe, reached, user, shared, error: null }),
      (error: unknown) => ({
        unsafe: null,
        reached: "unchecked" as const,
        user: null,
        shared: null,
        error: error ?? new Error("the path check failed"),
      }),
    );
  if (walked.unsafe !== null) throw refuse(fileMessage(path, field, unsafeFileReason(walked.unsafe, path, held)));
  // The file opened must be the one the walk reached: the owner of a directory on the path (one
  // another user may own) could put another file, or a link of theirs, there in between.
  const opened = (info: { dev: number; ino: number; nlink: number }): void => {
    const reached = walked.reached;
    if (reached === "unchecked" || reached === "pipe") return;
    if (reached !== "missing" && reached.dev === info.dev && reached.ino === info.ino) {
      if (walked.shared === null || info.nlink <= 1) return;
      throw refuse(fileMessage(path, field, sharedNameReason(walked.shared, info.nlink, path, held)));
    }
    // The path is checked as a whole: what changed may be the file, a link or a directory, and
    // whoever changed it may be this user (an editor's save renames a new file into place).
    const reason =
      "changed while its path was checked (the file opened is not the one the check reached): it, or a link or " +
      "directory on its path, was replaced in between (by an editor saving it anew, or by another user who owns a " +
      "directory on its path); run again, and should it recur, move the file to a directory only this user may " +
      "write to";
    throw refuse(fileMessage(path, field, reason));
  };
  const value = await read(opened, walked.user ?? undefined);
  if (walked.error !== null) {
    const reason = `cannot check its path (${fileErrorCause(walked.error, "check")})`;
    throw refuse(fileMessage(path, field, reason), walked.error);
  }
  return value;
}

/**
 * Where a `..` in `path` leaves another directory to the kernel than to path.join/resolve, or null:
 * the kernel takes a `..` after a link from the link's target, a path join from the link's
 * directory. For a directory named once and then joined with file names (the host's --audit-dir:
 * made and checked as given, its logs opened as join(dir, name)), the two must agree. Only the last
 * `..` is looked at: its prefix reaching one directory both ways, the names after it do too. A
 * prefix the kernel cannot resolve is passed over (opening the path fails as well, and says why).
 */
export async function dotDotAfterLink(
  path: string,
): Promise<{ prefix: string; kernel: string; joined: string } | null> {
  const names = path.split(sep);
  const last = names.lastIndexOf("..");
  if (last === -1) return null;
  const prefix = names.slice(0, last + 1).join(sep);
  const kernel = await realpath(prefix).catch(() => null);
  if (kernel === null) return null;
  const joined = await realpath(resolve(prefix)).catch(() => resolve(prefix));
  return kernel === joined ? null : { prefix, kernel, joined };
}

/** The directory above `path`, or null at `/`. */
function parent(path: string): string | null {
  return dirname(path) === path ? null : dirname(path);
}

/** As many links as Linux follows in one lookup before ELOOP. */
const MAX_LINKS = 40;

/**
 * Looks `path` (absolute) up a name at a time as the kernel does, links followed (a link's text
 * read from the link's real directory; a `..`, in it or in `path`, leaving the real directory reached): every
 * real directory a name was looked up in (whoever can write to one could put another name there:
 * a link in the middle of a chain lives in a directory on neither the path nor the real path), and
 * the real path, or null when a part of it does not exist yet (nothing to swap there yet).
 */
async function lookUp(
  path: string,
  user: User,
): Promise<{ target: string | null; lookedIn: string[]; link: UnsafeDirectory | null; reached: Checked }> {
  const names = path.split(sep).filter((name) => name !== "" && name !== ".");
  const lookedIn: string[] = [];
  let current: string = sep;
  let links = 0;
  // The first link followed that another user may replace (linkFault).
  let link: UnsafeDirectory | null = null;
  // The last name, when it is the whole text of a link in this process's fd directory (ANONYMOUS_PIPE);
  // the last name's file.
  let fromLink: string | null | undefined = null;
  let reached: Checked = "missing";
  for (let name = names.shift(); name !== undefined; name = names.shift()) {
    if (name === "..") {
      current = dirname(current);
      continue;
    }
    if (lookedIn.at(-1) !== current) lookedIn.push(current);
    const next = join(current, name);
    const info = await lstat(next).catch(missingAsNull);
    // A /proc/self/fd link to an anonymous pipe leads to `pipe:[inode]`, a name nowhere.
    if (info === null)
      return {
        target: null,
        lookedIn,
        link,
        reached: fromLink === name && ANONYMOUS_PIPE.test(name) ? "pipe" : "missing",
      };
    if (info.isSymbolicLink()) {
      links += 1;
      if (links > MAX_LINKS) {
        // The kernel's own error for it (ELOOP: it follows as many), which callers word as any other.
        await stat(path);
        throw new Error(`more than ${MAX_LINKS} symbolic links in ${path}`);
      }
      if (link === null && info.uid !== 0 && info.uid !== user.uid) {
        const dir = await stat(current);
        if (await linkFault(info.uid, dir, user)) {
          const mode = dir.mode & 0o7777;
          const fault = { path: next, itself: false, mode, writers: null, uid: info.uid, gid: dir.gid };
          link = { ...fault, user: user.uid, link: { dirUid: dir.uid } };
        }
      }
      const text = await readlink(next);
      // This process's own fd of a file since unlinked (zsh's here-strings, bash's here-documents
      // before 5.1): the kernel opens what the fd holds, not its text (`… (deleted)`, a name nowhere),
      // and no one else may change what our fd holds. Its reader checks the file itself when open.
      if (names.length === 0 && text.endsWith(DELETED) && ownFdDirectory(current)) {
        const held = await stat(next);
        return { target: null, lookedIn, link, reached: { dev: held.dev, ino: held.ino } };
      }
      // A link's whole text naming a pipe is one only in this process's own fd directory; elsewhere
      // it is a file's name in the link's directory, which may appear after the walk.
      const ownFd = !isAbsolute(text) && ownFdDirectory(current);
      if (isAbsolute(text)) current = sep;
      const parts = text.split(sep).filter((part) => part !== "" && part !== ".");
      fromLink = names.length === 0 && parts.length === 1 && ownFd ? parts[0] : null;
      names.unshift(...parts);
      continue;
    }
    if (!info.isDirectory() && names.length > 0) return { target: null, lookedIn, link, reached: "missing" };
    if (names.length === 0) reached = { dev: info.dev, ino: info.ino, nlink: info.nlink, holder: current };
    current = next;
  }
  return { target: current, lookedIn, link, reached };
}

/** What Linux's /proc/self/fd shows after the path of a file unlinked since it was opened. */
const DELETED = " (deleted)";

/** Whether `dir` (a real path) is this process's /proc fd directory (/proc/self/fd, /proc/thread-self/fd). */
function ownFdDirectory(dir: string): boolean {
  return new RegExp(`^/proc/${process.pid}(/task/\\d+)?/fd$`).test(dir);
}

/** What Linux's /proc/self/fd shows for an anonymous pipe: `pipe:[inode]`. */
const ANONYMOUS_PIPE = /^pipe:\[\d+\]$/;

function missingAsNull(error: unknown): null {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") return null;
  throw error;
}

/**
 * The reason (fileMessage's, without `dir`, the path asked about) for `found`: what was expected,
 * what was found (mode in octal, the ancestor's path, the owner's uid), what someone else could do
 * with `held` (what the directory holds: "its logs") and the fix as a shell command.
 */
export function unsafeDirectoryReason(found: UnsafeDirectory, dir: string, held: string): string {
  if (found.link !== undefined) return unsafeLinkReason(found, held);
  const mode = `0${found.mode.toString(8)}`;
  const path = shellWord(found.itself ? dir : found.path);
  // Only its group's members when only they may write to it (g+w, no o+w).
  const who = found.writers === null ? `uid ${found.uid}` : found.writers === "g" ? `group ${found.gid}` : "anyone";
  const stake = found.itself
    ? `${who} could remove or replace ${held}`
    : `${who} could rename the directory away with ${held} and put their own in its place`;
  if (found.writers !== null) {
    const fix = `chmod ${found.writers}-w ${path} (or set its sticky bit)`;
    const ancestor = `found one (the ancestor ${found.path} mode ${mode})`;
    return found.itself
      ? `expected a directory others cannot write to, found mode ${mode}: ${stake}; ${fix}`
      : `expected no directory above it that others can write to, ${ancestor}: ${stake}; ${fix}`;
  }
  // Only the directory itself is held to its owner (findUnsafeDirectory).
  const expected = `expected a directory owned by root or this user (uid ${found.user})`;
  const fix = `chown ${found.user} ${path}, or choose another directory`;
  return `${expected}, found one owned by uid ${found.uid} (mode ${mode}): ${stake}; ${fix}`;
}

/**
 * The reason (fileMessage's, without the path asked about, `file`) for `found` (readAfterPathCheck's
 * walk, unsafeOpenFile): what was expected, what was found (mode in octal, the directory's path, the
 * owner's uid), what someone else could then change (`held`: "which enclaves this client trusts")
 * and the fix as a shell command.
 */
export function unsafeFileReason(found: UnsafeDirectory, file: string, held: string): string {
  if (found.link !== undefined) return unsafeLinkReason(found, held);
  const mode = `0${found.mode.toString(8)}`;
  // chmod and chown follow a link: the file as named reaches the file found.
  const path = shellWord(found.itself ? file : found.path);
  const who = found.writers === null ? `uid ${found.uid}` : found.writers === "g" ? `group ${found.gid}` : "anyone";
  if (!found.itself) {
    // Only "anyone may write to it" is refused of a directory (readAfterPathCheck).
    const foundOne = `found one (the directory ${found.path} mode ${mode})`;
    const stake = `${who} could put their own file in its place, and with it ${held}`;
    const fix = `chmod o-w ${path} (or set its sticky bit)`;
    return `expected no directory on its path that others can write to, ${foundOne}: ${stake}; ${fix}`;
  }
  if (found.writers !== null && found.alsoOwner === true) {
    // Both faults and one fix: chown alone leaves the group's (and others') write bits.
    const writers = found.writers === "g" ? `group ${found.gid}` : "anyone";
    const expected = `expected a file owned by root or this user (uid ${found.user}) that others cannot write to`;
    const stake = `uid ${found.uid} and ${writers} could rewrite it, and with it ${held}`;
    const fix = `chown root ${path} && chmod ${found.writers}-w ${path}, or copy it to a file of this user's`;
    return `${expected}, found one owned by uid ${found.uid} (mode ${mode}): ${stake}; ${fix}`;
  }
  if (found.writers !== null) {
    const stake = `${who} could rewrite it, and with it ${held}`;
    return `expected a file others cannot write to, found mode ${mode}: ${stake}; chmod ${found.writers}-w ${path}`;
  }
  const expected = `expected a file owned by root or this user (uid ${found.user})`;
  // Root's, not this user's: a reader run as a service (the host's --api-keys) must not be able to
  // rewrite what it trusts. Changing a file's owner needs root either way; copying it does not.
  const fix = `chown root ${path}, or copy it to a file of this user's`;
  const stake = `${who} could rewrite it, and with it ${held}`;
  return `${expected}, found one owned by uid ${found.uid} (mode ${mode}): ${stake}; ${fix}`;
}

/**
 * The reason for a file of `names` names (SharedName): the file, its directory's owner and mode, and
 * the fix: find its other names and name the one trusted, or copy it.
 */
function sharedNameReason(found: SharedName, names: number, file: string, held: string): string {
  const mode = `0${found.mode.toString(8)}`;
  const expected = `expected a file of one name, or named in a directory of root's or this user's (uid ${found.user})`;
  const directory = `the directory ${found.path} (uid ${found.uid}, mode ${mode})`;
  const foundOne = `found one of ${names} names (hard links) in ${directory}`;
  const stake = `uid ${found.uid} could have linked there a file of root's or this user's that they cannot read`;
  const others = `see its other names (find / -samefile ${shellWord(file)})`;
  const fix = `${others} and name the one you trust, or copy it to a file of this user's`;
  return `${expected}, ${foundOne}: ${stake}, and with it ${held}; ${fix}`;
}

/**
 * The reason for a link another user may replace (linkFault): the link, its owner, its directory's
 * owner and mode, and the fix: name the file it leads to, once checked, or copy it. Not `chown -h`:
 * the link may lead elsewhere already.
 */
function unsafeLinkReason(found: UnsafeDirectory, held: string): string {
  const mode = `0${found.mode.toString(8)}`;
  const link = shellWord(found.path);
  const owners = `owned by root or this user (uid ${found.user}), or in a directory only they may write to`;
  const expected = `expected links on its path ${owners}`;
  const directory = `a directory of uid ${found.link?.dirUid} (mode ${mode})`;
  const foundOne = `found the link ${found.path} owned by uid ${found.uid} in ${directory}`;
  const fix = `name the file it leads to (readlink -f ${link}) if you trust it, or copy it to a file of this user's`;
  return `${expected}, ${foundOne}: uid ${found.uid} could point it at another file, and with it ${held}; ${fix}`;
}
