/** An error answer from the Rota server: its HTTP status, its `code` and its `message`. */
export class RotaError extends Error {
  override readonly name = "RotaError";

  constructor(
    /** The HTTP status, e.g. 404. */
    readonly status: number,
    /** The server's snake_case code, e.g. `task_not_found`, `invalid_field`, `task_cancelled`. */
    readonly code: string,
    message: string,
    /** The `X-Request-Id` of the request, as the server logged it. */
    readonly requestId?: string,
    /** Seconds the server asked to wait before trying again (`Retry-After`), when it said. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }

  /** 404 of any kind: the task, queue, tenant, key, role or route does not exist. */
  get notFound(): boolean {
    return this.status === 404;
  }

  /** 409 `task_cancelled`: the task was cancelled while a worker held it. */
  get cancelled(): boolean {
    return this.status === 409 && this.code === "task_cancelled";
  }

  /** 409 `lease_lost`: the lease no longer holds the task. */
  get leaseLost(): boolean {
    return this.status === 409 && this.code === "lease_lost";
  }

  /** The server is busy or unavailable (429, 503): the same request may succeed later. */
  get transient(): boolean {
    return this.status === 429 || this.status === 503;
  }
}

/** The request got no answer: the connection was refused or reset, or it timed out. */
export class TransportError extends Error {
  override readonly name = "TransportError";

  constructor(
    message: string,
    readonly requestId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
