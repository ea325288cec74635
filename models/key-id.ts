/**
 * Model key ids: how a manifest's `model.keyId`, a sealed file's header, the key broker and its
 * wire protocol name a model key. One definition, no dependencies (the browser-safe protocol code
 * and the Node-only file code both use it).
 */
export const KEY_ID_PATTERN = /^[A-Za-z0-9._:-]{1,200}$/;
/** The rule, for error messages. */
export const KEY_ID_RULE = "1..200 characters of A-Z a-z 0-9 . _ : -";
