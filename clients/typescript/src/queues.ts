import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { GroupInfo, GroupPage, GroupSettings, QueueInfo, QueuePatch, QueueStats, TaskList } from "./types.js";

/** Queue settings, counts, flow control, pause and resume, purge and dead letters. */
export class Queues {
  constructor(private readonly http: Transport) {}

  async list(call?: CallOptions): Promise<QueueInfo[]> {
    const answer = await this.http.json<{ queues: QueueInfo[] }>({ method: "GET", path: "/v1/queues" }, call);
    return answer.queues;
  }

  /** Settings, counts by state, and what the flow-control limits hold back now. */
  stats(queue: string, call?: CallOptions): Promise<QueueStats> {
    return this.http.json({ method: "GET", path: path`/v1/queues/${queue}` }, call);
  }

  /** Changes the settings present (`null` lifts a limit); creates the queue if needed. */
  update(queue: string, patch: QueuePatch, call?: CallOptions): Promise<QueueInfo> {
    return this.http.json({ method: "PATCH", path: path`/v1/queues/${queue}`, body: patch }, call);
  }

  pause(queue: string, call?: CallOptions): Promise<QueueInfo> {
    return this.http.json({ method: "POST", path: path`/v1/queues/${queue}/pause` }, call);
  }

  resume(queue: string, call?: CallOptions): Promise<QueueInfo> {
    return this.http.json({ method: "POST", path: path`/v1/queues/${queue}/resume` }, call);
  }

  /** Deletes the queue's tasks in a final state now; answers how many. */
  async purge(queue: string, state: "dead" | "succeeded" | "cancelled", call?: CallOptions): Promise<number> {
    const answer = await this.http.json<{ deleted: number }>(
      { method: "DELETE", path: path`/v1/queues/${queue}/tasks`, query: { state } },
      call,
    );
    return answer.deleted;
  }

  /** One page of the queue's dead letters, newest first; retry one with `tasks.retry`. */
  deadLetters(queue: string, options: { limit?: number; cursor?: string } = {}, call?: CallOptions): Promise<TaskList> {
    return this.http.json({ method: "GET", path: path`/v1/queues/${queue}/tasks`, query: { state: "dead", ...options } }, call);
  }

  /** One group's own limits (`{}` removes them). */
  putGroup(queue: string, group: string, settings: GroupSettings, call?: CallOptions): Promise<GroupInfo> {
    return this.http.json({ method: "PUT", path: path`/v1/queues/${queue}/groups/${group}`, body: settings }, call);
  }

  /** The queue's groups by name, a page at a time (`after` is the previous page's `next`). */
  groups(queue: string, options: { after?: string; limit?: number } = {}, call?: CallOptions): Promise<GroupPage> {
    return this.http.json({ method: "GET", path: path`/v1/queues/${queue}/groups`, query: { ...options } }, call);
  }
}

