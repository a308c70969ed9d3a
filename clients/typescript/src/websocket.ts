/** What this library uses of the standard `WebSocket` (browsers, Node.js 22+, Deno, Bun). */
export interface WebSocketLike {
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close" | "error", listener: () => void): void;
  close(code?: number): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The runtime's `WebSocket`, if it has one. */
export function standardWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

/** The text frames of `socket` until it closes or `signal` aborts (which closes it). */
export async function* textFrames(socket: WebSocketLike, signal?: AbortSignal): AsyncGenerator<string> {
  const frames: string[] = [];
  let closed = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  socket.addEventListener("message", ({ data }) => {
    if (typeof data === "string") frames.push(data);
    notify();
  });
  const end = () => {
    closed = true;
    notify();
  };
  socket.addEventListener("close", end);
  socket.addEventListener("error", end);
  const onAbort = () => {
    socket.close(1000);
    end();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const frame = frames.shift();
      if (frame !== undefined) {
        yield frame;
      } else if (closed) {
        return;
      } else {
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!closed) socket.close(1000);
  }
}
