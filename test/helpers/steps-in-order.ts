/**
 * The steps a doc's text leaves out or names out of order: each must come after the one before it. The
 * docs' procedures (a model upgrade, a key rotation) are checked with it against the order they work in.
 */
export function stepsOutOfOrder(text: string, steps: readonly string[]): string[] {
  const wrong: string[] = [];
  let from = 0;
  for (const step of steps) {
    const at = text.indexOf(step, from);
    if (at < 0) wrong.push(step);
    else from = at + step.length;
  }
  return wrong;
}
