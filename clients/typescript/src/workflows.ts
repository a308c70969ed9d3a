import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { ListWorkflowsOptions, Workflow, WorkflowList, WorkflowTaskInput } from "./workflow-types.js";

/** Graphs of tasks submitted at once: each task waits for the ones it names in `depends_on`. */
export class Workflows {
  constructor(private readonly http: Transport) {}

  /**
   * Stores every task, or none (an unknown or repeated name, a cycle: 422). Tasks with
   * dependencies are `waiting`; the others start as an enqueue would.
   */
  submit(tasks: WorkflowTaskInput[], call?: CallOptions): Promise<Workflow> {
    return this.http.json({ method: "POST", path: "/v1/workflows", body: { tasks } }, call);
  }

  /** The workflow with its tasks. */
  get(id: string, call?: CallOptions): Promise<Workflow> {
    return this.http.json({ method: "GET", path: path`/v1/workflows/${id}` }, call);
  }

  /** One page of workflows, newest first, their tasks counted but not listed. */
  list(options: ListWorkflowsOptions = {}, call?: CallOptions): Promise<WorkflowList> {
    return this.http.json({ method: "GET", path: "/v1/workflows", query: { ...options } }, call);
  }

  /** Every workflow, newest first, page after page. */
  async *iterate(options: Omit<ListWorkflowsOptions, "before"> = {}, call?: CallOptions): AsyncGenerator<Workflow> {
    let before: string | undefined;
    do {
      const page = await this.list({ ...options, before }, call);
      yield* page.workflows;
      before = page.next_before ?? undefined;
    } while (before !== undefined);
  }

  /** Cancels every task of the workflow that is not final; answers the workflow. */
  cancel(id: string, call?: CallOptions): Promise<Workflow> {
    return this.http.json({ method: "POST", path: path`/v1/workflows/${id}/cancel` }, call);
  }
}
