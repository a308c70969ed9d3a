/** How a failed attempt should be treated, thrown by a handler to say more than "it failed". */
export interface FailureOptions {
  /** Retry after this many ms instead of the queue's backoff. */
  retryInMs?: number;
  /** Do not retry: the task goes straight to the dead letters. */
  dead?: boolean;
  /** A dependency was down: the error is recorded, but the attempt is given back. */
  temporary?: boolean;
}

/**
 * Thrown by a handler to fail the attempt with these options. Any other thrown value fails the
 * attempt too, with its message, and the task is retried after the queue's backoff.
 */
export class HandlerError extends Error {
  override readonly name = "HandlerError";
  readonly retryInMs: number | undefined;
  readonly dead: boolean;
  readonly temporary: boolean;

  constructor(message: string, options: FailureOptions = {}) {
    super(message);
    this.retryInMs = options.retryInMs;
    this.dead = options.dead ?? false;
    this.temporary = options.temporary ?? false;
  }

  /** A failure that must not be retried: the task becomes dead now. */
  static dead(message: string): HandlerError {
    return new HandlerError(message, { dead: true });
  }

  /** A failure that does not spend an attempt. */
  static temporary(message: string, retryInMs?: number): HandlerError {
    return new HandlerError(message, { temporary: true, retryInMs });
  }
}

/** Why a handler's signal fired: the reason its `AbortSignal` carries. */
export class TaskAbortedError extends Error {
  override readonly name = "TaskAbortedError";

  constructor(
    /** `cancelled` (by an operator), `lease_lost`, `timeout`, or `shutdown` (past the grace period). */
    readonly reason: "cancelled" | "lease_lost" | "timeout" | "shutdown",
    message: string,
  ) {
    super(message);
  }
}
