/** A test file's own temporary directory: made when the file loads, removed (with all it holds) after its tests. */
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach } from "vitest";

/** A fresh directory under the system's temporary folder, named `prefix` and random characters; removed afterAll. */
export async function testDirectory(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A fresh directory for each test (its real path: /tmp may be a link), named `prefix` and random
 * characters, handed to `use` before the test and removed after it.
 */
export function testDirectoryEach(prefix: string, use: (dir: string) => void): void {
  let dir: string | undefined;
  beforeEach(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), prefix)));
    use(dir);
  });
  afterEach(() => (dir === undefined ? undefined : rm(dir, { recursive: true, force: true })));
}
