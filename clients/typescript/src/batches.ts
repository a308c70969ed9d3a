import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { Task } from "./types.js";
import type { AddedTask, BatchInput, Workflow } from "./workflow-types.js";

/**
 * Batches: members and one callback task that runs once every member is final; the callback's
 * claim carries `batch` (a `BatchSummary`: the ids that succeeded, died or were cancelled). A
 * batch is a workflow of `kind: "batch"`, so `rota.workflows` lists and cancels it too. An open
 * batch takes members after it is submitted, until it is closed.
 */
export class Batches {
  constructor(private readonly http: Transport) {}

  /**
   * Stores the members and the callback, or nothing (a bad member or callback: 422). Answers the
   * batch as a `Workflow` of `kind: "batch"` whose last task is named `callback`. With
   * `only_on_success` a member that ends dead or cancelled cancels the callback. An `open` batch
   * (its `tasks` may be empty) takes more members with {@link Batches.add} until
   * {@link Batches.close}, and its callback waits for the close too.
   */
  submit({ tasks, callback, only_on_success, open }: BatchInput, call?: CallOptions): Promise<Workflow> {
    const body = { tasks, callback, only_on_success, open };
    return this.http.json({ method: "POST", path: "/v1/batches", body }, call);
  }

  /**
   * Adds members (each with its queue) to an open batch; answers them as stored, in order. A
   * closed batch is a 409 `conflict`, a plain workflow's id a 422, an unknown id a 404; each
   * stores nothing.
   */
  async add(id: string, tasks: AddedTask[], call?: CallOptions): Promise<Task[]> {
    const answer = await this.http.json<{ tasks: Task[] }>(
      { method: "POST", path: path`/v1/batches/${id}/tasks`, body: { tasks } },
      call,
    );
    return answer.tasks;
  }

  /**
   * Closes an open batch: its callback runs once every member is final (at once if they all
   * are). Answers the batch, `open: false`; closing a closed batch changes nothing.
   */
  close(id: string, call?: CallOptions): Promise<Workflow> {
    return this.http.json({ method: "POST", path: path`/v1/batches/${id}/close`, body: {} }, call);
  }

  /** The batch with its members and callback; 404 `batch_not_found` for a plain workflow's id. */
  get(id: string, call?: CallOptions): Promise<Workflow> {
    return this.http.json({ method: "GET", path: path`/v1/batches/${id}` }, call);
  }
}
