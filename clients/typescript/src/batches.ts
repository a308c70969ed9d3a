import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { BatchInput, Workflow } from "./types.js";

/**
 * Batches: members and one callback task that runs once every member is final; the callback's
 * claim carries `batch` (a `BatchSummary`: the ids that succeeded, died or were cancelled). A
 * batch is a workflow of `kind: "batch"`, so `rota.workflows` lists and cancels it too.
 */
export class Batches {
  constructor(private readonly http: Transport) {}

  /**
   * Stores the members and the callback, or nothing (a bad member or callback: 422). Answers the
   * batch as a `Workflow` of `kind: "batch"` whose last task is named `callback`. With
   * `only_on_success` a member that ends dead or cancelled cancels the callback.
   */
  submit({ tasks, callback, only_on_success }: BatchInput, call?: CallOptions): Promise<Workflow> {
    const body = { tasks, callback, only_on_success };
    return this.http.json({ method: "POST", path: "/v1/batches", body }, call);
  }

  /** The batch with its members and callback; 404 `batch_not_found` for a plain workflow's id. */
  get(id: string, call?: CallOptions): Promise<Workflow> {
    return this.http.json({ method: "GET", path: path`/v1/batches/${id}` }, call);
  }
}
