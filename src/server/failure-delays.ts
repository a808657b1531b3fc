/**
 * Failure delays served in the primary: PAM asked that a failure be answered only after a
 * while; the client waits, no worker does. One timer per waiting reply and no shared
 * listener list (an AbortSignal shared by every delay made Node warn about a listener leak
 * past ten at once, and the warning reached the log). cutAll() ends every delay at once
 * (shutdown: the clients get their NO now rather than not at all).
 */
export class FailureDelays {
  private readonly waiting = new Map<NodeJS.Timeout, () => void>();
  private cut = false;

  /** Resolves after `ms`, or at once once cutAll() was called. */
  serve(ms: number): Promise<void> {
    if (ms <= 0 || this.cut) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(timer);
        resolve();
      }, ms);
      this.waiting.set(timer, resolve);
    });
  }

  /** How many replies wait out a delay now. */
  get pending(): number {
    return this.waiting.size;
  }

  cutAll(): void {
    this.cut = true;
    for (const [timer, resolve] of this.waiting) {
      clearTimeout(timer);
      resolve();
    }
    this.waiting.clear();
  }
}
