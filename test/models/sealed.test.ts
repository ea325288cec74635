/**
 * Sealed model files (models/sealed.ts): a round trip at the sizes where chunking has edges, and
 * every way a host could change the sealed bytes — each refused with its own code, with no
 * plaintext file left behind.
 */

import { execFileSync } from "node:child_process";
import { createCipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import {
  appendFile,
  type FileHandle,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  stat,
  symlink,
  truncate,
  writeFile,
} from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { isModelBadInput, type ModelError, ModelIoError, ModelNotRegularFileError } from "../../models/errors.ts";
import {
  generateModelKey,
  modelKeyFromJwk,
  modelKeyToJwk,
  parseSealedModelHeader,
  readSealedHeader,
  sealModelFile,
  unsealModelFile,
} from "../../models/sealed.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** Inputs whose first pass (sha256Handle) finds another digest: what a file rewritten in between would give. */
const { rewritten } = vi.hoisted(() => ({ rewritten: new Set<string>() }));

vi.mock("../../models/hash.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../models/hash.ts")>();
  return {
    ...actual,
    sha256Handle: (...args: Parameters<typeof actual.sha256Handle>) =>
      rewritten.has(args[1]) ? Promise.resolve("00".repeat(32)) : actual.sha256Handle(...args),
  };
});

/** The sealed header of the file at `path`, read through a handle of its own (as cloister up reads it). */
async function readSealedModelHeader(path: string) {
  const handle = await open(path, "r");
  try {
    return await readSealedHeader(handle, (await handle.stat()).size, path);
  } finally {
    await handle.close();
  }
}

const CHUNK = 4096;
const dir = await testDirectory("cloister-sealed-");
const key = generateModelKey("test-key.v1");

beforeAll(async () => {});

let counter = 0;
async function sealed(plain: Uint8Array, modelKey = key) {
  const n = counter++;
  const input = join(dir, `plain-${n}.gguf`);
  const output = join(dir, `sealed-${n}.bin`);
  await writeFile(input, plain);
  const info = await sealModelFile(input, output, modelKey, { chunkSize: CHUNK });
  return { input, output, info, expected: { sha256: info.sha256, sizeBytes: info.sizeBytes, keyId: info.keyId } };
}

/**
 * A sealed file made by this test from the format's description (models/sealed.ts), not by
 * sealModelFile: `lastFlag` says what each chunk's nonce carries in its last byte, and
 * `plaintextSha256` what its header says the plaintext's digest is.
 */
function sealByHand(
  plain: Buffer,
  lastFlag: (index: number, chunks: number) => number,
  plaintextSha256: Buffer = createHash("sha256").update(plain).digest(),
): Buffer {
  const id = Buffer.from(key.keyId, "ascii");
  const head = Buffer.alloc(8 + 1 + 1 + id.length + 4 + 8);
  head.write("CLSEALMD", 0, "ascii");
  head[8] = 1;
  head[9] = id.length;
  id.copy(head, 10);
  head.writeUInt32BE(CHUNK, 10 + id.length);
  head.writeBigUInt64BE(BigInt(plain.length), 14 + id.length);
  const salt = randomBytes(32);
  const header = Buffer.concat([head, plaintextSha256, salt]);
  const aad = createHash("sha256").update(header).digest();
  const okm = Buffer.from(hkdfSync("sha256", key.key, salt, "cloister/sealed-model/v1", 39));
  const chunks = Math.max(1, Math.ceil(plain.length / CHUNK));
  const parts = [header];
  for (let i = 0; i < chunks; i++) {
    const nonce = Buffer.alloc(12);
    okm.copy(nonce, 0, 32, 39);
    nonce.writeUInt32BE(i, 7);
    nonce[11] = lastFlag(i, chunks);
    const cipher = createCipheriv("aes-256-gcm", okm.subarray(0, 32), nonce);
    cipher.setAAD(aad);
    parts.push(cipher.update(plain.subarray(i * CHUNK, (i + 1) * CHUNK)), cipher.final(), cipher.getAuthTag());
  }
  return Buffer.concat(parts);
}

/** Writes a sealed file made by hand, with what a manifest pinning it would say. */
async function written(bytes: Buffer) {
  const file = join(dir, `by-hand-${counter++}.bin`);
  await writeFile(file, bytes);
  const expected = {
    sha256: createHash("sha256").update(bytes).digest("hex"),
    sizeBytes: bytes.length,
    keyId: key.keyId,
  };
  return { file, expected };
}

/** An error as the operating system's EIO reaches Node (a read or fstat of a failing disk). */
function eio(): Error {
  return Object.assign(new Error("EIO: i/o error (a stand-in)"), { code: "EIO" });
}

function out(): string {
  return join(dir, `unsealed-${counter++}.gguf`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe("sealed model files", () => {
  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17]) {
    it(`round-trips ${size} bytes and reports the digests the manifest pins`, async () => {
      const plain = randomBytes(size);
      const s = await sealed(plain);
      const bytes = await readFile(s.output);
      expect(s.info.sizeBytes).toBe(bytes.length);
      expect(s.info.sha256).toBe((await import("node:crypto")).createHash("sha256").update(bytes).digest("hex"));
      expect(s.info.plaintextSize).toBe(size);
      // One 16-byte tag per chunk, and one (empty) chunk for an empty model: it authenticates the header.
      const headerBytes = (await readSealedModelHeader(s.output)).bytes.length;
      expect(bytes.length).toBe(headerBytes + size + 16 * Math.max(1, Math.ceil(size / CHUNK)));
      // The sealed bytes do not contain the plaintext (a 64-byte window of it, for sizes that have one).
      if (size >= 64) expect(bytes.includes(plain.subarray(size - 64))).toBe(false);
      const target = out();
      const header = await unsealModelFile(s.output, target, key, s.expected);
      expect(header.plaintextSha256).toBe(s.info.plaintextSha256);
      expect(Buffer.compare(await readFile(target), plain)).toBe(0);
      expect((await stat(target)).mode & 0o777).toBe(0o600);
    });
  }

  it("stops when its signal aborts (the enclave's boot stopped), removing what it decrypted, with the signal's reason", async () => {
    const s = await sealed(randomBytes(3 * CHUNK));
    const target = out();
    const stopped = unsealModelFile(s.output, target, key, s.expected, { signal: AbortSignal.abort("SIGTERM") });
    await expect(stopped).rejects.toBe("SIGTERM");
    expect(await exists(target)).toBe(false);
  });

  it("seals the same model twice into different bytes (fresh salt: new file key and nonces)", async () => {
    const plain = randomBytes(CHUNK * 2);
    const a = await sealed(plain);
    const b = await sealed(plain);
    expect(a.info.sha256).not.toBe(b.info.sha256);
    expect(a.info.plaintextSha256).toBe(b.info.plaintextSha256);
  });

  it("reads the key id from the header, and refuses files that are not sealed models", async () => {
    const s = await sealed(randomBytes(100));
    expect((await readSealedModelHeader(s.output)).keyId).toBe("test-key.v1");
    expect(() => parseSealedModelHeader(Buffer.from("GGUF\u0003\u0000\u0000\u0000\u0000\u0000"))).toThrow(
      expect.objectContaining({ code: "SEALED_MODEL_MALFORMED" }),
    );
    // Header fields out of range: the message names the field, the expected and the found value.
    const header = Buffer.from((await readSealedModelHeader(s.output)).bytes);
    const badId = Buffer.from(header);
    badId.write(" ", 10, "latin1");
    expect(() => parseSealedModelHeader(badId)).toThrow(
      'sealed model keyId: expected 1..200 characters of A-Z a-z 0-9 . _ : -, found " est-key.v1"',
    );
    const huge = Buffer.from(header);
    huge.writeBigUInt64BE(2n ** 60n, header.length - 32 - 32 - 8);
    expect(() => parseSealedModelHeader(huge)).toThrow(
      `sealed model plaintextSize: expected at most ${Number.MAX_SAFE_INTEGER} bytes, found ${2n ** 60n}`,
    );
  });

  it("refuses each malformed header field at its bound, naming the field, the expected and the found value", async () => {
    const s = await sealed(randomBytes(100));
    const valid = Buffer.from((await readSealedModelHeader(s.output)).bytes);
    const id = key.keyId.length;
    const at = { chunkSize: 10 + id, plaintextSize: 14 + id };
    /** The valid header with `change` applied to a copy. */
    const edit = (change: (b: Buffer) => void) => {
      const b = Buffer.from(valid);
      change(b);
      return b;
    };
    /** A header whose key id field holds `text` (any bytes, any length up to 255). */
    const withKeyId = (text: string) => {
      const idBytes = Buffer.from(text, "latin1");
      return Buffer.concat([valid.subarray(0, 9), Uint8Array.of(idBytes.length), idBytes, valid.subarray(10 + id)]);
    };
    const refused: [string, Buffer, string][] = [
      ["magic and version only", valid.subarray(0, 9), 'sealed model magic: expected "CLSEALMD"'],
      ["another magic", edit((b) => b.write("CLSEALMX", 0, "latin1")), 'sealed model magic: expected "CLSEALMD"'],
      ["version 2", edit((b) => b.writeUInt8(2, 8)), "sealed model version: expected 1, found 2"],
      [
        "one byte short",
        valid.subarray(0, valid.length - 1),
        `sealed model header: expected ${valid.length} bytes, found ${valid.length - 1}`,
      ],
      [
        "an empty key id",
        withKeyId(""),
        'sealed model keyId: expected 1..200 characters of A-Z a-z 0-9 . _ : -, found ""',
      ],
      [
        "a key id of 201 characters, with a control character (quoted, cut at 64 and its length named)",
        withKeyId(`\u001b${"a".repeat(200)}`),
        `sealed model keyId: expected 1..200 characters of A-Z a-z 0-9 . _ : -, found "\uFFFD${"a".repeat(63)}"… (201 characters)`,
      ],
      [
        "chunkSize 4095",
        edit((b) => b.writeUInt32BE(4095, at.chunkSize)),
        "sealed model chunkSize: expected 4096..16777216, found 4095",
      ],
      [
        "chunkSize 16 MiB + 1",
        edit((b) => b.writeUInt32BE(16777217, at.chunkSize)),
        "sealed model chunkSize: expected 4096..16777216, found 16777217",
      ],
      [
        "plaintextSize 2^53",
        edit((b) => b.writeBigUInt64BE(2n ** 53n, at.plaintextSize)),
        `sealed model plaintextSize: expected at most ${Number.MAX_SAFE_INTEGER} bytes, found ${2n ** 53n}`,
      ],
    ];
    for (const [name, bytes, message] of refused) {
      let caught: unknown;
      try {
        parseSealedModelHeader(bytes);
      } catch (error) {
        caught = error;
      }
      expect(caught, name).toMatchObject({ code: "SEALED_MODEL_MALFORMED" });
      expect((caught as Error).message, name).toContain(message);
    }
    // The bounds themselves are accepted, and the header's bytes stop where it ends.
    const accepted: [string, Buffer][] = [
      ["chunkSize 4096", edit((b) => b.writeUInt32BE(4096, at.chunkSize))],
      ["chunkSize 16 MiB", edit((b) => b.writeUInt32BE(16777216, at.chunkSize))],
      ["plaintextSize 2^53 - 1", edit((b) => b.writeBigUInt64BE(2n ** 53n - 1n, at.plaintextSize))],
      ["a key id of 200 characters", withKeyId("k".repeat(200))],
    ];
    for (const [name, bytes] of accepted) {
      const header = parseSealedModelHeader(Buffer.concat([bytes, Buffer.from("chunk bytes")]));
      expect(Buffer.compare(Buffer.from(header.bytes), bytes), name).toBe(0);
    }
  });

  it("sealing refuses a chunk size outside 4096..16 MiB or not an integer, and a key that is not 32 bytes", async () => {
    const input = join(dir, `options-${counter++}.gguf`);
    await writeFile(input, randomBytes(100));
    for (const chunkSize of [4095, 16777217, 4096.5]) {
      await expect(sealModelFile(input, out(), key, { chunkSize })).rejects.toThrow(
        `chunkSize: expected an integer 4096..16777216, found ${chunkSize}`,
      );
    }
    for (const chunkSize of [4096, 16777216]) {
      const info = await sealModelFile(input, out(), key, { chunkSize });
      expect(info.plaintextSize).toBe(100);
    }
    await expect(sealModelFile(input, out(), { keyId: key.keyId, key: key.key.subarray(0, 31) })).rejects.toMatchObject(
      {
        code: "MODEL_KEY_INVALID",
        message: "model key: expected 32 bytes",
      },
    );
    await expect(sealModelFile(input, out(), { keyId: "no spaces", key: key.key })).rejects.toMatchObject({
      code: "MODEL_KEY_INVALID",
    });
  });

  it("seal refuses an input that changed between its two passes (MODEL_CHANGED), naming the file", async () => {
    const input = join(dir, "rewritten.gguf");
    await writeFile(input, randomBytes(CHUNK));
    rewritten.add(input);
    await expect(sealModelFile(input, join(dir, "rewritten.sealed"), key)).rejects.toMatchObject({
      code: "MODEL_CHANGED",
      message: `model file ${input}: changed while being sealed`,
    });
  });

  it("seal refuses an input grown or cut after it was opened (its size is taken at the open): MODEL_CHANGED", async () => {
    for (const [name, change] of [
      ["grown", (file: string) => appendFile(file, randomBytes(CHUNK))],
      ["cut", (file: string) => truncate(file, CHUNK)],
    ] as const) {
      const input = join(dir, `${name}-after-open.gguf`);
      await writeFile(input, randomBytes(2 * CHUNK));
      const output = join(dir, `${name}-after-open.sealed`);
      // `check` runs on the opened file, before either pass reads it.
      const check = () => change(input);
      await expect(sealModelFile(input, output, key, { chunkSize: CHUNK, check })).rejects.toMatchObject({
        code: "MODEL_CHANGED",
        message: `model file ${input}: changed while being sealed`,
      });
      expect(await exists(output)).toBe(false);
    }
  });

  it("a read or fstat of the input that fails while sealing is MODEL_IO naming the file and errno, no output left", async () => {
    // `check` gets the opened input: its second read (the first is the first pass's hash), or the
    // fstat after the second pass (openModelInput's own is done), fails.
    const failing: [string, (handle: FileHandle) => void][] = [
      [
        "read",
        (handle) => {
          const read = handle.read.bind(handle) as (...args: unknown[]) => Promise<unknown>;
          let reads = 0;
          handle.read = ((...args: unknown[]) =>
            ++reads === 1 ? read(...args) : Promise.reject(eio())) as FileHandle["read"];
        },
      ],
      [
        "fstat",
        (handle) => {
          handle.stat = (() => Promise.reject(eio())) as FileHandle["stat"];
        },
      ],
    ];
    for (const [name, fail] of failing) {
      const input = join(dir, `${name}-fails.gguf`);
      await writeFile(input, randomBytes(CHUNK));
      const output = join(dir, `${name}-fails.sealed`);
      const error = await sealModelFile(input, output, key, { chunkSize: CHUNK, check: async (h) => fail(h) }).then(
        () => null,
        (caught: unknown) => caught as ModelError,
      );
      expect(error).toBeInstanceOf(ModelIoError);
      expect({ code: error?.code, message: error?.message }).toEqual({
        code: "MODEL_IO",
        message: `model file ${input}: cannot read (EIO)`,
      });
      expect(error?.cause).toMatchObject({ code: "EIO" });
      expect(await exists(output)).toBe(false);
    }
    expect((await readdir(dir)).filter((name) => name.includes(".partial"))).toEqual([]);
  });

  it("a partial file that cannot be created, written, synced or closed is MODEL_IO naming the output and errno, none left", async () => {
    const input = join(dir, "for-failing-output.gguf");
    await writeFile(input, randomBytes(2 * CHUNK));
    // No directory to create it in: the output's name, never the hidden partial file's.
    const nowhere = join(dir, "no-such-directory", "model.sealed");
    await expect(sealModelFile(input, nowhere, key, { chunkSize: CHUNK })).rejects.toMatchObject({
      constructor: ModelIoError,
      code: "MODEL_IO",
      message: `sealed model output ${nowhere}: cannot create (ENOENT)`,
      cause: { code: "ENOENT" },
    });
    // The partial file's handle is the one written to: its first write or its sync fails, or its own
    // close (a field of each handle, not of the prototype) is done, then reported failed.
    const probe = await open(input, "r");
    const fileHandle = Object.getPrototypeOf(probe) as Record<
      "write" | "sync",
      (...args: unknown[]) => Promise<unknown>
    >;
    await probe.close();
    const enospc = () => Object.assign(new Error("ENOSPC: no space left on device (a stand-in)"), { code: "ENOSPC" });
    for (const step of ["write", "sync", "close"] as const) {
      let failed = false;
      const failOnce = () => {
        if (failed) return false;
        failed = true;
        return true;
      };
      const { write: realWrite, sync: realSync } = fileHandle;
      const spies = [
        vi.spyOn(fileHandle, "write").mockImplementation(function (this: FileHandle, ...args: unknown[]) {
          if (step === "write" && failOnce()) return Promise.reject(enospc());
          if (step === "close" && !failed) {
            failed = true;
            const close = this.close.bind(this);
            this.close = async () => {
              await close();
              throw enospc();
            };
          }
          return realWrite.apply(this, args);
        }),
        vi.spyOn(fileHandle, "sync").mockImplementation(function (this: FileHandle, ...args: unknown[]) {
          return step === "sync" && failOnce() ? Promise.reject(enospc()) : realSync.apply(this, args);
        }),
      ];
      const output = join(dir, `failing-${step}.sealed`);
      const error = await sealModelFile(input, output, key, { chunkSize: CHUNK })
        .then(
          () => null,
          (caught: unknown) => caught as ModelError,
        )
        .finally(() => {
          for (const spy of spies) spy.mockRestore();
        });
      expect({ step, type: error?.constructor.name, code: error?.code, message: error?.message }).toEqual({
        step,
        type: "ModelIoError",
        code: "MODEL_IO",
        message: `sealed model output ${output}: cannot write (ENOSPC)`,
      });
      expect(await exists(output)).toBe(false);
    }
    expect((await readdir(dir)).filter((name) => name.includes(".partial"))).toEqual([]);
  });

  it("a read of the sealed model that fails (its header, a chunk, the byte past its end) is MODEL_IO, nothing left", async () => {
    const s = await sealed(randomBytes(2 * CHUNK));
    const headerBytes = (await readSealedModelHeader(s.output)).bytes.length;
    const probe = await open(s.output, "r");
    const fileHandle = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const realRead = fileHandle.read;
    // Each read of the sealed model is at its own position: the header at 0, the second chunk after
    // the first's bytes and tag, the check for one byte more at the file's size.
    for (const [name, at] of [
      ["header", 0],
      ["chunk", headerBytes + CHUNK + 16],
      ["past its end", s.info.sizeBytes],
    ] as const) {
      const read = vi.spyOn(fileHandle, "read").mockImplementation(function (this: FileHandle, ...args: unknown[]) {
        if (args[3] === at) return Promise.reject(eio());
        return realRead.apply(this, args);
      });
      const target = out();
      const error = await unsealModelFile(s.output, target, key, s.expected)
        .then(
          () => null,
          (caught: unknown) => caught as ModelError,
        )
        .finally(() => read.mockRestore());
      expect({ name, code: error?.code, message: error?.message }).toEqual({
        name,
        code: "MODEL_IO",
        message: `model file ${s.output}: cannot read (EIO)`,
      });
      expect(await exists(target)).toBe(false);
    }
  });

  describe("refuses a changed file, leaving no plaintext behind", () => {
    const cases: [string, (bytes: Buffer, headerLength: number) => Buffer, string][] = [
      [
        "a flipped bit in a chunk",
        (b, h) => {
          const c = Buffer.from(b);
          c[h + CHUNK + 5] = (c[h + CHUNK + 5] as number) ^ 1;
          return c;
        },
        "SEALED_MODEL_AUTH_FAILED",
      ],
      [
        "a changed header field that derives no key (the plaintext digest): the header is every chunk's additional data",
        (b, h) => {
          const c = Buffer.from(b);
          c[h - 40] = (c[h - 40] as number) ^ 0x80;
          return c;
        },
        "SEALED_MODEL_AUTH_FAILED",
      ],
      [
        "two chunks swapped",
        (b, h) => {
          const len = CHUNK + 16;
          const first = b.subarray(h, h + len);
          const second = b.subarray(h + len, h + 2 * len);
          return Buffer.concat([b.subarray(0, h), second, first, b.subarray(h + 2 * len)]);
        },
        "SEALED_MODEL_AUTH_FAILED",
      ],
    ];
    for (const [name, change, code] of cases) {
      it(name, async () => {
        const s = await sealed(randomBytes(3 * CHUNK + 10));
        const bytes = await readFile(s.output);
        const headerLength = (await readSealedModelHeader(s.output)).bytes.length;
        const changed = join(dir, `changed-${counter++}.bin`);
        await writeFile(changed, change(bytes, headerLength));
        const target = out();
        // The manifest still pins the original digest: the changed file also fails that, but
        // authentication fails first, on the chunk that changed.
        await expect(unsealModelFile(changed, target, key, s.expected)).rejects.toMatchObject({ code });
        expect(await exists(target)).toBe(false);
      });
    }

    // Cutting chunks off means patching the header's plaintextSize (it says how many chunks there
    // are), and the header is every chunk's additional data: chunk 0 already fails. The last-chunk
    // flag is a second guard, tested by the next case.
    it("the last chunk cut off, the header's size patched to match (fails on the authenticated header)", async () => {
      const s = await sealed(randomBytes(3 * CHUNK));
      const bytes = await readFile(s.output);
      const header = await readSealedModelHeader(s.output);
      const cut = Buffer.from(bytes.subarray(0, bytes.length - (CHUNK + 16)));
      cut.writeBigUInt64BE(BigInt(2 * CHUNK), header.bytes.length - 32 - 32 - 8);
      const changed = join(dir, `cut-${counter++}.bin`);
      await writeFile(changed, cut);
      const target = out();
      await expect(
        unsealModelFile(changed, target, key, { ...s.expected, sizeBytes: cut.length }),
      ).rejects.toMatchObject({ code: "SEALED_MODEL_AUTH_FAILED" });
      expect(await exists(target)).toBe(false);
    });

    it("the last-chunk flag: only the last chunk's nonce carries it (a file made from the format's description)", async () => {
      const plain = randomBytes(3 * CHUNK);
      const cases: [string, (i: number, n: number) => number, string | null][] = [
        ["as described", (i, n) => (i === n - 1 ? 1 : 0), null],
        ["no chunk flagged last", () => 0, "sealed model chunk 2 of 3: fails authentication"],
        ["the first chunk flagged last", (i) => (i === 0 ? 1 : 0), "sealed model chunk 0 of 3: fails authentication"],
      ];
      for (const [, lastFlag, refusal] of cases) {
        const { file, expected } = await written(sealByHand(plain, lastFlag));
        const target = out();
        if (refusal === null) {
          await unsealModelFile(file, target, key, expected);
          expect(Buffer.compare(await readFile(target), plain)).toBe(0);
        } else {
          await expect(unsealModelFile(file, target, key, expected)).rejects.toMatchObject({
            code: "SEALED_MODEL_AUTH_FAILED",
            message: expect.stringContaining(refusal),
          });
          expect(await exists(target)).toBe(false);
        }
      }
    });

    it("a file whose chunks all authenticate but whose header names another plaintext digest", async () => {
      // Whoever holds the model key can write such a file; the manifest pins its sealed digest, so
      // only the plaintext check tells that the decrypted bytes are not the model it describes.
      const plain = randomBytes(2 * CHUNK + 5);
      const claimed = createHash("sha256").update(randomBytes(16)).digest();
      const { file, expected } = await written(sealByHand(plain, (i, n) => (i === n - 1 ? 1 : 0), claimed));
      const target = out();
      await expect(unsealModelFile(file, target, key, expected)).rejects.toMatchObject({
        code: "SEALED_MODEL_PLAINTEXT_MISMATCH",
        message: `sealed model plaintextSha256: expected ${claimed.toString("hex")} (its header), found ${createHash("sha256").update(plain).digest("hex")}`,
      });
      expect(await exists(target)).toBe(false);
    });

    /**
     * Unseals a 2048-chunk file and applies `change` to it once the output exists (after the size
     * check and the header, with the chunks still to be read); returns the error, if any.
     */
    async function changedWhileUnsealing(change: (path: string) => Promise<void>) {
      const s = await sealed(randomBytes(2048 * CHUNK));
      const target = out();
      let done = false;
      const outcome = unsealModelFile(s.output, target, key, s.expected).then(
        () => null,
        (error: unknown) => error,
      );
      void outcome.finally(() => {
        done = true;
      });
      while (!done && !(await exists(target))) await new Promise((resolve) => setImmediate(resolve));
      await change(s.output);
      return { error: await outcome, path: s.output, leftBehind: await exists(target) };
    }

    it("a file that grows while it is being unsealed", async () => {
      const { error, path, leftBehind } = await changedWhileUnsealing((file) => appendFile(file, Uint8Array.of(0)));
      expect(error).toMatchObject({
        code: "MODEL_SIZE_MISMATCH",
        message: `sealed model ${path}: grew while being unsealed`,
      });
      expect(leftBehind).toBe(false);
    });

    it("a file cut short while it is being unsealed", async () => {
      const { error, leftBehind } = await changedWhileUnsealing((file) => truncate(file, 1000));
      expect(error).toMatchObject({
        code: "SEALED_MODEL_TRUNCATED",
        message: expect.stringMatching(/^sealed model chunk \d+: file ends after \d+ bytes$/),
      });
      expect(leftBehind).toBe(false);
    });

    it("a header that describes a file of another size than the one the manifest pins (checked before any key is used)", async () => {
      const s = await sealed(randomBytes(CHUNK));
      const { file, expected } = await written(Buffer.concat([await readFile(s.output), Uint8Array.of(0)]));
      const target = out();
      await expect(unsealModelFile(file, target, key, expected)).rejects.toMatchObject({
        code: "SEALED_MODEL_MALFORMED",
        // The manifest's size (the file's: one byte appended) expected, the header's found.
        message: `sealed model header: expected to describe a ${s.info.sizeBytes + 1}-byte file (the manifest's model.sizeBytes), found one describing a ${s.info.sizeBytes}-byte file`,
      });
      expect(await exists(target)).toBe(false);
    });

    it("a path that is not a regular file (a directory, a FIFO no one writes to), without waiting on it", async () => {
      const s = await sealed(randomBytes(CHUNK));
      const fifo = join(dir, `fifo-${counter++}`);
      execFileSync("mkfifo", [fifo]);
      for (const path of [dir, fifo]) {
        await expect(unsealModelFile(path, out(), key, s.expected)).rejects.toMatchObject({
          code: "MODEL_SIZE_MISMATCH",
          message: `sealed model ${path}: expected ${s.expected.sizeBytes} bytes (the manifest's model.sizeBytes), found not a regular file`,
        });
      }
    });

    it("a file of another size than the manifest's, before reading anything", async () => {
      const s = await sealed(randomBytes(CHUNK));
      const target = out();
      await expect(
        unsealModelFile(s.output, target, key, { ...s.expected, sizeBytes: s.expected.sizeBytes + 1 }),
      ).rejects.toMatchObject({ code: "MODEL_SIZE_MISMATCH" });
      expect(await exists(target)).toBe(false);
    });

    it("another sealing of the same model under the same key (valid, but not the file the manifest pins)", async () => {
      const plain = randomBytes(CHUNK);
      const pinned = await sealed(plain);
      const other = await sealed(plain);
      const target = out();
      await expect(unsealModelFile(other.output, target, key, pinned.expected)).rejects.toMatchObject({
        code: "MODEL_DIGEST_MISMATCH",
        message: `sealed model ${other.output}: sha256: expected ${pinned.expected.sha256} (the manifest's model.sha256), found ${other.expected.sha256}`,
      });
      expect(await exists(target)).toBe(false);
    });

    it("the wrong key, and a key or file of another key id", async () => {
      const s = await sealed(randomBytes(CHUNK));
      const wrong = { keyId: key.keyId, key: generateModelKey("x").key };
      await expect(unsealModelFile(s.output, out(), wrong, s.expected)).rejects.toMatchObject({
        code: "SEALED_MODEL_AUTH_FAILED",
      });
      await expect(
        unsealModelFile(s.output, out(), generateModelKey("other"), { ...s.expected, keyId: "other" }),
      ).rejects.toMatchObject({ code: "SEALED_MODEL_KEY_MISMATCH" });
      await expect(unsealModelFile(s.output, out(), key, { ...s.expected, keyId: "other" })).rejects.toMatchObject({
        code: "SEALED_MODEL_KEY_MISMATCH",
      });
      // The right key bytes under another kid (a broker answering for another key): refused by its
      // kid, before the file is read, though the file would decrypt.
      const target = out();
      await expect(
        unsealModelFile(s.output, target, { keyId: "other", key: key.key }, s.expected),
      ).rejects.toMatchObject({
        code: "SEALED_MODEL_KEY_MISMATCH",
        message: `model key kid: expected "${key.keyId}" (the manifest's model.keyId), found "other"`,
      });
      expect(await exists(target)).toBe(false);
    });

    it("a model key made anew under the same key id: the refusal names the key id and that likely cause, never the key", async () => {
      const s = await sealed(randomBytes(3 * CHUNK));
      const remade = generateModelKey(key.keyId);
      const target = out();
      const error = (await unsealModelFile(s.output, target, remade, s.expected).then(
        () => null,
        (caught: unknown) => caught,
      )) as ModelError | null;
      expect(error?.code).toBe("SEALED_MODEL_AUTH_FAILED");
      expect(error?.message).toBe(
        `sealed model chunk 0 of 3: fails authentication under model key id "${key.keyId}": the model key the key ` +
          `broker holds under "${key.keyId}" is not the key this file was sealed with (was the key made anew under ` +
          "the same id? then seal the model again under it, or restore the old key), or the file's header or first " +
          "chunk was altered",
      );
      for (const secret of [remade.key, key.key]) {
        for (const encoding of ["hex", "base64", "base64url"] as const) {
          expect(error?.message).not.toContain(Buffer.from(secret).toString(encoding));
        }
      }
      expect(await exists(target)).toBe(false);
      // A later chunk, under the key that opened the ones before it: the file itself was changed.
      const bytes = Buffer.from(await readFile(s.output));
      const headerLength = (await readSealedModelHeader(s.output)).bytes.length;
      const at = headerLength + CHUNK + 16 + 5;
      bytes[at] = (bytes[at] as number) ^ 1;
      const changed = join(dir, `changed-${counter++}.bin`);
      await writeFile(changed, bytes);
      await expect(unsealModelFile(changed, out(), key, s.expected)).rejects.toMatchObject({
        code: "SEALED_MODEL_AUTH_FAILED",
        message:
          `sealed model chunk 1 of 3: fails authentication under model key id "${key.keyId}", which opened the ` +
          "chunks before it: the file was altered, reordered or cut",
      });
    });

    it("sealing with overwrite: false refuses an existing output (MODEL_OUTPUT_EXISTS), leaving it and nothing else", async () => {
      const s0 = await sealed(randomBytes(100));
      const target = out();
      await writeFile(target, "pinned sealed model");
      await expect(sealModelFile(s0.input, target, key, { chunkSize: CHUNK, overwrite: false })).rejects.toMatchObject({
        code: "MODEL_OUTPUT_EXISTS",
        message: `sealed model output ${target}: already exists; it is not replaced (cloister model seal --force replaces it)`,
      });
      expect(await readFile(target, "utf8")).toBe("pinned sealed model");
      const fresh = out();
      const info = await sealModelFile(s0.input, fresh, key, { chunkSize: CHUNK, overwrite: false });
      expect(info.sizeBytes).toBe((await readFile(fresh)).length);
      // The default replaces (what `cloister up` does when it reseals its model).
      await sealModelFile(s0.input, target, key, { chunkSize: CHUNK });
      expect((await readFile(target)).subarray(0, 8).toString("latin1")).toBe("CLSEALMD");
      expect((await readdir(dirname(target))).filter((name) => name.includes(".partial"))).toEqual([]);
    });

    it("a partial file left by a sealer killed outright is removed by the next sealing of that output; a live one's and other files are kept", async () => {
      const s0 = await sealed(randomBytes(100));
      const sub = await mkdtemp(join(dir, "abandoned-"));
      // No process has a pid above pid_max: a sealer killed outright (SIGKILL, or Ctrl-C: Node's
      // default SIGINT runs no cleanup) left this one, hidden and as large as the sealing got.
      const dead = Number((await readFile("/proc/sys/kernel/pid_max", "utf8")).trim()) + 1;
      const abandoned = `.model.sealed.${dead}.0123456789ab.partial`;
      const live = `.model.sealed.${process.pid}.0123456789ab.partial`;
      const otherPath = `.other.sealed.${dead}.0123456789ab.partial`;
      for (const name of [abandoned, live, otherPath, "notes.txt"]) await writeFile(join(sub, name), "bytes");
      await sealModelFile(s0.input, join(sub, "model.sealed"), key, { chunkSize: CHUNK });
      expect((await readdir(sub)).sort()).toEqual([live, otherPath, "model.sealed", "notes.txt"].sort());
    });

    it("sealing with overwrite: false refuses an existing output before it opens the input", async () => {
      const target = out();
      await writeFile(target, "pinned sealed model");
      await expect(
        sealModelFile(join(dir, "no-such-input.gguf"), target, key, { overwrite: false }),
      ).rejects.toMatchObject({ code: "MODEL_OUTPUT_EXISTS" });
    });

    it("a directory at the output's name is refused before any work, as not a regular file (bad input)", async () => {
      const s0 = await sealed(randomBytes(100));
      for (const overwrite of [true, false]) {
        const target = join(dir, `occupied-${counter++}.gguf.sealed`);
        await mkdir(join(target, "inside"), { recursive: true });
        const error = await sealModelFile(s0.input, target, key, { chunkSize: CHUNK, overwrite }).then(
          () => null,
          (caught: unknown) => caught as ModelError,
        );
        expect(error).toBeInstanceOf(ModelNotRegularFileError);
        expect(error?.code).toBe("MODEL_IO");
        expect(error?.message).toBe(`sealed model output ${target}: expected a regular file, found a directory`);
        expect(isModelBadInput(error as ModelError)).toBe(true);
        expect(await readdir(target)).toEqual(["inside"]);
        // Before the input is opened: a missing input is not what is reported.
        await expect(
          sealModelFile(join(dir, "no-such-input.gguf"), target, key, { chunkSize: CHUNK, overwrite }),
        ).rejects.toBeInstanceOf(ModelNotRegularFileError);
      }
      expect((await readdir(dir)).filter((name) => name.includes(".partial"))).toEqual([]);
    });

    it("a FIFO, socket or device at the output's name is refused, with or without --force, left as it was, and not waited on", async () => {
      const s0 = await sealed(randomBytes(100));
      const fifo = join(dir, `fifo-out-${counter++}.sealed`);
      execFileSync("mkfifo", [fifo]);
      // A device node with /dev/null's numbers, made here (tests run as root); /dev is not touched.
      const device = join(dir, `device-out-${counter++}.sealed`);
      execFileSync("mknod", [device, "c", "1", "3"]);
      const socket = join(dir, `socket-out-${counter++}.sealed`);
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(socket, resolve));
      try {
        const cases: [string, string, (path: string) => Promise<boolean>][] = [
          [fifo, "a FIFO", async (path) => (await lstat(path)).isFIFO()],
          [device, "a character device", async (path) => (await lstat(path)).isCharacterDevice()],
          [socket, "a socket", async (path) => (await lstat(path)).isSocket()],
        ];
        for (const [target, found, stillThere] of cases) {
          for (const overwrite of [true, false]) {
            const error = await sealModelFile(s0.input, target, key, { chunkSize: CHUNK, overwrite }).then(
              () => null,
              (caught: unknown) => caught as ModelError,
            );
            expect(error).toBeInstanceOf(ModelNotRegularFileError);
            expect(error?.code).toBe("MODEL_IO");
            expect(error?.message).toBe(`sealed model output ${target}: expected a regular file, found ${found}`);
            expect(isModelBadInput(error as ModelError)).toBe(true);
            expect(await stillThere(target)).toBe(true);
          }
        }
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      expect((await readdir(dir)).filter((name) => name.includes(".partial"))).toEqual([]);
    });

    it("a symbolic link at the output's name is replaced with --force (the link, not its target), refused without", async () => {
      const s0 = await sealed(randomBytes(100));
      const pointed = join(dir, `pointed-${counter++}.bin`);
      await writeFile(pointed, "the link's target");
      const target = join(dir, `link-out-${counter++}.sealed`);
      await symlink(pointed, target);
      await expect(sealModelFile(s0.input, target, key, { chunkSize: CHUNK, overwrite: false })).rejects.toMatchObject({
        code: "MODEL_OUTPUT_EXISTS",
      });
      expect((await lstat(target)).isSymbolicLink()).toBe(true);
      const info = await sealModelFile(s0.input, target, key, { chunkSize: CHUNK, overwrite: true });
      expect((await lstat(target)).isFile()).toBe(true);
      expect(info.sizeBytes).toBe((await readFile(target)).length);
      expect(await readFile(pointed, "utf8")).toBe("the link's target");
    });

    it("sealing that fails after writing (a directory appears at the output's name) is MODEL_IO EISDIR, no partial file", async () => {
      const s0 = await sealed(randomBytes(100));
      const target = join(dir, `appears-${counter++}.gguf.sealed`);
      // `check` runs after the output's check and before the partial file is written.
      const check = () => mkdir(join(target, "inside"), { recursive: true }).then(() => {});
      const error = await sealModelFile(s0.input, target, key, { chunkSize: CHUNK, check }).then(
        () => null,
        (caught: unknown) => caught as ModelError,
      );
      expect(error).toBeInstanceOf(ModelIoError);
      expect(error?.message).toBe(`sealed model output ${target}: cannot replace (EISDIR)`);
      expect(isModelBadInput(error as ModelError)).toBe(true);
      expect((await readdir(dir)).filter((name) => name.includes(".partial"))).toEqual([]);
    });

    it("never overwrites or removes a file that already exists at the output path", async () => {
      const s = await sealed(randomBytes(100));
      const target = out();
      await writeFile(target, "keep me");
      await expect(unsealModelFile(s.output, target, key, s.expected)).rejects.toMatchObject({ code: "MODEL_IO" });
      expect(await readFile(target, "utf8")).toBe("keep me");
    });
  });

  it("model key JWKs: round trip, and errors that name the field without showing the key", () => {
    const jwk = modelKeyToJwk(key);
    const back = modelKeyFromJwk(JSON.parse(JSON.stringify(jwk)));
    expect(back.keyId).toBe(key.keyId);
    expect(Buffer.compare(Buffer.from(back.key), Buffer.from(key.key))).toBe(0);
    const short = { ...jwk, k: Buffer.from(key.key.subarray(0, 16)).toString("base64url") };
    expect(() => modelKeyFromJwk(short)).toThrow(/k: expected 32 bytes, found 16/);
    const long = { ...jwk, k: Buffer.concat([key.key, Uint8Array.of(0)]).toString("base64url") };
    expect(() => modelKeyFromJwk(long)).toThrow(/k: expected 32 bytes, found 33/);
    expect(() => modelKeyFromJwk({ ...jwk, kty: "OKP" })).toThrow(/kty: expected "oct", found "OKP"/);
    expect(() => modelKeyFromJwk({ ...jwk, kid: "has space" })).toThrow(/kid: expected 1..200 characters/);
    expect(() => modelKeyFromJwk({ ...jwk, kid: 7 })).toThrow("model key kid: expected a key id string, found 7");
    // A quote in the key id is escaped: the found value cannot end early and add words of its own.
    expect(() => modelKeyFromJwk({ ...jwk, kid: "a\" (the manifest's)" })).toThrow(
      'model key kid: expected 1..200 characters of A-Z a-z 0-9 . _ : -, found "a\\" (the manifest\'s)"',
    );
    const { k: _k, ...withoutK } = jwk;
    expect(() => modelKeyFromJwk(withoutK)).toThrow("model key k: expected 32 bytes, base64url");
    for (const notObject of [null, [jwk], "jwk"]) {
      expect(() => modelKeyFromJwk(notObject, "key file")).toThrow(
        'key file: expected a JSON object (a JWK with kty "oct")',
      );
    }
    try {
      modelKeyFromJwk(short);
    } catch (error) {
      expect((error as Error).message).not.toContain(short.k);
    }
  });

  it("leaves no partial output when sealing fails", async () => {
    const before = await readdir(dir);
    await expect(sealModelFile(join(dir, "missing.gguf"), join(dir, "never.bin"), key)).rejects.toMatchObject({
      code: "MODEL_IO",
    });
    expect((await readdir(dir)).sort()).toEqual(before.sort());
  });
});

describe("unsealing with the ciphertext hashed on a worker thread (large models)", () => {
  const parallel = { parallelHashMinBytes: 0 };

  it("round-trips and checks the pinned digest exactly as the single-thread path", async () => {
    const plain = randomBytes(5 * CHUNK + 123);
    const s = await sealed(plain);
    const target = out();
    const header = await unsealModelFile(s.output, target, key, s.expected, parallel);
    expect(header.plaintextSha256).toBe(s.info.plaintextSha256);
    expect(Buffer.compare(await readFile(target), plain)).toBe(0);

    const other = await sealed(plain);
    const refused = out();
    await expect(unsealModelFile(other.output, refused, key, s.expected, parallel)).rejects.toMatchObject({
      code: "MODEL_DIGEST_MISMATCH",
    });
    expect(await exists(refused)).toBe(false);
  });

  it("still refuses an altered chunk, and leaves no thread or copy behind", async () => {
    const s = await sealed(randomBytes(3 * CHUNK));
    const bytes = Buffer.from(await readFile(s.output));
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 1;
    const changed = join(dir, `changed-parallel-${counter++}.bin`);
    await writeFile(changed, bytes);
    const target = out();
    await expect(unsealModelFile(changed, target, key, s.expected, parallel)).rejects.toMatchObject({
      code: "SEALED_MODEL_AUTH_FAILED",
    });
    expect(await exists(target)).toBe(false);
  });
});
