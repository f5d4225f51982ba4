/** Resolves once `check()` holds, polling every `pollMs`; throws naming `what` after `ms`. */
export async function until(what: string, check: () => boolean, ms = 20_000, pollMs = 5): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
