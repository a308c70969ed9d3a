// Workflows and batches, and the tasks added to them after submission (an open batch's members,
// the tasks a running task spawns).
import type { OnDependencyFailure, StateCounts, Task, TaskInput } from "./types.js";

/**
 * One task of a workflow: a task as `enqueue` takes it (without `unique_key`), with a name
 * unique in the workflow, its queue, and the names of the tasks of the workflow it waits for.
 * (The server's schema makes `name` optional because batches share it; a workflow requires it.)
 */
export interface WorkflowTaskInput extends Omit<TaskInput, "unique_key" | "on_duplicate"> {
  name: string;
  queue: string;
  /** Names of other tasks of this workflow that must succeed first. */
  depends_on?: string[];
}

/**
 * A task with its queue, without name or dependencies: a batch's member or callback, a member
 * added to an open batch (`batches.add`), or a task a running task spawns (`tasks.spawn`).
 */
export type AddedTask = Omit<WorkflowTaskInput, "name" | "depends_on" | "on_dependency_failure">;

/** A member or the callback of a batch (the same as {@link AddedTask}). */
export type BatchTaskInput = AddedTask;

/** `POST /v1/batches`: members, and a callback that runs once every member is final. */
export interface BatchInput {
  /** At most 9,999 members. */
  tasks: BatchTaskInput[];
  /** Its claim carries `batch` (a `BatchSummary`); stored as the batch's task named `callback`. */
  callback: BatchTaskInput;
  /**
   * Run the callback only if every member succeeded; otherwise it is cancelled. Default false:
   * it runs whatever the members ended as.
   */
  only_on_success?: boolean;
  /**
   * Keep the batch open: it takes more members (`batches.add`) until `batches.close`, and the
   * callback waits for the close too. `tasks` may then be empty. Default false.
   */
  open?: boolean;
}

/** `workflow`: a graph of named tasks (`workflows.submit`); `batch`: members and a callback (`batches.submit`). */
export type WorkflowKind = "workflow" | "batch";

/** `running` while some task is not final; else `failed` if one is dead, `cancelled` if one is. */
export type WorkflowState = "running" | "succeeded" | "failed" | "cancelled";

/** A task of a workflow, under the name it was submitted with. */
export interface WorkflowTask {
  name: string;
  task: Task;
}

export interface Workflow {
  id: string;
  kind: WorkflowKind;
  state: WorkflowState;
  created_at: string;
  /** Its tasks counted by state. */
  counts: StateCounts;
  /** In submission order; absent in a list. */
  tasks?: WorkflowTask[];
  /** A batch only: whether it still takes members (`batches.add`) until `batches.close`. */
  open?: boolean | null;
}

export interface WorkflowList {
  /** Newest first, without their tasks. */
  workflows: Workflow[];
  /** Pass as `before` for the next (older) page; null on the last. */
  next_before?: string | null;
}

export interface ListWorkflowsOptions {
  /** The previous page's `next_before`. */
  before?: string;
  /** Page size (default 100). */
  limit?: number;
}

/** `tasks.spawn`: how the spawner takes a spawned task that ends badly. */
export interface SpawnOptions {
  /**
   * A spawned task that ends dead or cancelled cancels the spawner (`cancel`, the default), or
   * the spawner runs again anyway (`run`) and its claim's `dependencies` show how each ended.
   */
  on_dependency_failure?: OnDependencyFailure;
}

/** What `tasks.spawn` answers. */
export interface Spawned {
  /** The spawner as it stands: `waiting` for the tasks (or released already if they all ended). */
  task: Task;
  /** The tasks spawned, in the order given. */
  tasks: Task[];
}
