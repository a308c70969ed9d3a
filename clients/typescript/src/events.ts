import { setTimeout as sleep } from "node:timers/promises";
import { RotaError } from "./errors.js";
import type { CallOptions, Transport } from "./http.js";
import { parseSse } from "./sse.js";
import type { EventList, RotaEvent, Ticket } from "./types.js";
import { standardWebSocket, textFrames } from "./websocket.js";

export interface EventFilter {
  /** Comma-separated or listed types or `*` patterns, e.g. `task.*`. */
  types?: string | string[];
  /** Queue names or `*` patterns. */
  queue?: string | string[];
}

export interface EventPageOptions extends EventFilter {
  /** The previous page's `next_cursor` (0: from the oldest retained). */
  after?: number;
  limit?: number;
  /** With no event yet, wait this long for the next one. */
  waitMs?: number;
}

export interface FollowOptions extends EventFilter {
  /** Start after this cursor (default: from the oldest retained). */
  after?: number;
  /** Stops the follow; the generator then returns. */
  signal?: AbortSignal;
  /** Wait before reconnecting after the stream drops, in ms. Default 1,000. */
  reconnectMs?: number;
}

/** The tenant's event log: pages, long polls and a live follow that resumes where it was. */
export class Events {
  constructor(private readonly http: Transport) {}

  /** One page of events after `after`, oldest first. */
  page(options: EventPageOptions = {}, call?: CallOptions): Promise<EventList> {
    const { waitMs, ...query } = options;
    return this.http.json(
      { method: "GET", path: "/v1/events", query: { ...query, wait_ms: waitMs }, waitMs },
      call,
    );
  }

  /** A one-minute ticket that opens the event stream for a browser's `EventSource`. */
  ticket(call?: CallOptions): Promise<Ticket> {
    return this.http.json({ method: "POST", path: "/v1/events/tickets" }, call);
  }

  /**
   * Follows the log live over Server-Sent Events. When the connection drops (or the server
   * restarts) it reconnects with `Last-Event-ID` set to the last cursor it yielded, so nothing
   * is missed or repeated. Ends when `signal` aborts; throws on an error answer other than
   * 503 (after which it waits `Retry-After` and reconnects).
   */
  async *follow(options: FollowOptions = {}): AsyncGenerator<RotaEvent> {
    const { signal, reconnectMs = 1_000, after, ...filter } = options;
    let cursor = after;
    while (!signal?.aborted) {
      try {
        const resp = await this.http.send(
          {
            method: "GET",
            path: "/v1/events/stream",
            query: { ...filter },
            stream: true,
            headers: {
              accept: "text/event-stream",
              ...(cursor !== undefined ? { "last-event-id": String(cursor) } : {}),
            },
          },
          { signal },
        );
        if (!resp.body) throw new Error("the event stream has no body");
        for await (const message of parseSse(resp.body)) {
          const event = JSON.parse(message.data) as RotaEvent;
          cursor = event.cursor;
          yield event;
        }
      } catch (err) {
        if (signal?.aborted) return;
        if (err instanceof RotaError && !err.transient) throw err;
        const wait = err instanceof RotaError && err.retryAfter ? err.retryAfter * 1000 : reconnectMs;
        await sleep(wait, undefined, { signal }).catch(() => undefined);
        continue;
      }
      // The server ended the stream (shutting down, say): reconnect after a pause.
      await sleep(reconnectMs, undefined, { signal }).catch(() => undefined);
    }
  }

  /**
   * The same live follow over the event WebSocket (`GET /v1/events/ws`), opened with a
   * one-minute ticket (a WebSocket cannot send an `Authorization` header), and reopened with a
   * fresh ticket and `after` set to the last cursor it yielded when the connection drops. Needs
   * the runtime's standard `WebSocket` (Node.js 22+, or 20 with `--experimental-websocket`);
   * {@link Events.follow} needs nothing.
   */
  async *followWebSocket(options: FollowOptions = {}): AsyncGenerator<RotaEvent> {
    const WebSocket = standardWebSocket();
    if (!WebSocket) {
      throw new Error(
        "this runtime has no WebSocket (Node.js 22+ has; 20 with --experimental-websocket): use events.follow(), the same stream over SSE",
      );
    }
    const { signal, reconnectMs = 1_000, after, ...filter } = options;
    let cursor = after;
    while (!signal?.aborted) {
      try {
        const { ticket } = await this.ticket({ signal });
        const url = this.http.url("/v1/events/ws", { ...filter, after: cursor, ticket }).replace(/^http/, "ws");
        for await (const frame of textFrames(new WebSocket(url), signal)) {
          const event = JSON.parse(frame) as RotaEvent;
          cursor = event.cursor;
          yield event;
        }
      } catch (err) {
        if (signal?.aborted) return;
        if (err instanceof RotaError && !err.transient) throw err;
      }
      await sleep(reconnectMs, undefined, { signal }).catch(() => undefined);
    }
  }
}
