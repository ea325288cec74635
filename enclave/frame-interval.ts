/**
 * The default least time between two data frames of one answer (after the first), in its own
 * module so the CLI can show it without loading the enclave.
 *
 * 20 ms: at most 50 frames a second per answer, still a smooth stream to a reader, while a fast
 * model's tokens travel several to a frame: one seal and one write per hop instead of one per
 * token (CPU the decode loop needs on a small machine), and the host sees the size of a group of
 * tokens rather than of each token.
 */
export const DEFAULT_FRAME_INTERVAL_MS = 20;
