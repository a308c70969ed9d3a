import { spawnAnswered, spawning } from "./handoff.js";
import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type {
  ClaimOptions,
  ClaimedTask,
  CompleteItem,
  EnqueuedTask,
  FailItem,
  FailOptions,
  ItemOutcome,
  Json,
  ListTasksOptions,
  Task,
  TaskInput,
  TaskList,
} from "./types.js";
import type { AddedTask, SpawnOptions, Spawned } from "./workflow-types.js";

/** The arguments of `tasks.spawn`: a claimed task, or its id and lease. */
type SpawnArgs =
  | [task: Pick<Task, "id" | "lease">, tasks: AddedTask[], options?: SpawnOptions, call?: CallOptions]
  | [id: string, lease: string, tasks: AddedTask[], options?: SpawnOptions, call?: CallOptions];

/** Enqueue, read, list and change tasks; claim, heartbeat and report them as a worker. */
export class Tasks {
  constructor(private readonly http: Transport) {}

  /** Enqueues one task (201), or answers the live task holding its `unique_key` (`duplicate`). */
  enqueue(queue: string, task: TaskInput = {}, call?: CallOptions): Promise<EnqueuedTask> {
    return this.http.json({ method: "POST", path: path`/v1/queues/${queue}/tasks`, body: task }, call);
  }

  /** Enqueues a batch in one transaction: all or nothing. Answers one task per input, in order. */
  async enqueueBatch(queue: string, tasks: TaskInput[], call?: CallOptions): Promise<EnqueuedTask[]> {
    const answer = await this.http.json<{ tasks: EnqueuedTask[] }>(
      { method: "POST", path: path`/v1/queues/${queue}/tasks`, body: { tasks } },
      call,
    );
    return answer.tasks;
  }

  /** The task; with `waitMs`, answers once it is final or the wait runs out (check `state`). */
  get(id: string, options: { waitMs?: number } & CallOptions = {}): Promise<Task> {
    const { waitMs, ...call } = options;
    return this.http.json(
      { method: "GET", path: path`/v1/tasks/${id}`, query: { wait_ms: waitMs }, waitMs },
      call,
    );
  }

  /** One page of a queue's tasks, newest first. */
  list(queue: string, options: ListTasksOptions = {}, call?: CallOptions): Promise<TaskList> {
    return this.http.json({ method: "GET", path: path`/v1/queues/${queue}/tasks`, query: { ...options } }, call);
  }

  /** Every task of a queue matching `options`, page after page. */
  async *iterate(queue: string, options: Omit<ListTasksOptions, "cursor"> = {}, call?: CallOptions): AsyncGenerator<Task> {
    let cursor: string | undefined;
    do {
      const page = await this.list(queue, { ...options, cursor }, call);
      yield* page.tasks;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /** A waiting, scheduled, ready or running task becomes `cancelled`. */
  cancel(id: string, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "POST", path: path`/v1/tasks/${id}/cancel` }, call);
  }

  /** A dead or cancelled task becomes ready again, with `attempt` 0. */
  retry(id: string, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "POST", path: path`/v1/tasks/${id}/retry` }, call);
  }

  /** A scheduled task (delayed, or waiting for its retry backoff) becomes ready now. */
  runNow(id: string, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "POST", path: path`/v1/tasks/${id}/run-now` }, call);
  }

  /** A waiting, scheduled or ready task becomes dead without running. */
  kill(id: string, reason?: string, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "POST", path: path`/v1/tasks/${id}/kill`, body: { reason } }, call);
  }

  /** Deletes a task that is not running; answers it as it was. */
  delete(id: string, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "DELETE", path: path`/v1/tasks/${id}` }, call);
  }

  /**
   * Leases up to `max` ready tasks, waiting up to `wait_ms` for one. A task that waited for
   * others carries them in `dependencies`, with their results.
   */
  async claim(queue: string, options: ClaimOptions, call?: CallOptions): Promise<ClaimedTask[]> {
    const answer = await this.http.json<{ tasks: ClaimedTask[] }>(
      { method: "POST", path: path`/v1/queues/${queue}/claim`, body: options, waitMs: options.wait_ms },
      call,
    );
    return answer.tasks;
  }

  /** Extends the lease and stores `progress`. 409 `task_cancelled` or `lease_lost`: stop. */
  heartbeat(id: string, lease: string, options: { lease_ms?: number; progress?: Json } = {}, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "POST", path: path`/v1/tasks/${id}/heartbeat`, body: { lease, ...options } }, call);
  }

  complete(id: string, lease: string, result?: Json, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "POST", path: path`/v1/tasks/${id}/complete`, body: { lease, result } }, call);
  }

  fail(id: string, lease: string, error: string, options: FailOptions = {}, call?: CallOptions): Promise<Task> {
    return this.http.json({ method: "POST", path: path`/v1/tasks/${id}/fail`, body: { lease, error, ...options } }, call);
  }

  /**
   * The running task adds `tasks` (each with its queue) and waits for them: it gives up its
   * lease (completing under it is then a 409 `lease_lost`) and runs again once they end, as the
   * same attempt, its claim carrying their results in `dependencies`. A spawned task that ends
   * dead or cancelled cancels it unless `on_dependency_failure: "run"`. A lease that is not the
   * task's is a 409 (`lease_lost`, `task_cancelled`) and stores nothing.
   *
   * Inside a `Worker` handler, pass the claimed task and return: that run reports nothing
   * (the worker counts it as `spawned`).
   */
  spawn(task: Pick<Task, "id" | "lease">, tasks: AddedTask[], options?: SpawnOptions, call?: CallOptions): Promise<Spawned>;
  spawn(id: string, lease: string, tasks: AddedTask[], options?: SpawnOptions, call?: CallOptions): Promise<Spawned>;
  async spawn(...args: SpawnArgs): Promise<Spawned> {
    const [id, lease, tasks, options, call] =
      typeof args[0] === "string"
        ? (args as [string, string, AddedTask[], SpawnOptions?, CallOptions?])
        : [args[0].id, args[0].lease?.token ?? "", args[1] as AddedTask[], args[2] as SpawnOptions | undefined, args[3] as CallOptions | undefined];
    spawning(lease);
    try {
      const spawned = await this.http.json<Spawned>(
        { method: "POST", path: path`/v1/tasks/${id}/spawn`, body: { lease, tasks, ...options } },
        call,
      );
      spawnAnswered(lease, true);
      return spawned;
    } catch (err) {
      spawnAnswered(lease, false);
      throw err;
    }
  }

  /** Completes many tasks in one commit; one outcome per item, in order. */
  async completeBatch(items: CompleteItem[], call?: CallOptions): Promise<ItemOutcome[]> {
    const answer = await this.http.json<{ items: ItemOutcome[] }>({ method: "POST", path: "/v1/tasks/complete", body: { items } }, call);
    return answer.items;
  }

  /** Fails many tasks in one commit; one outcome per item, in order. */
  async failBatch(items: FailItem[], call?: CallOptions): Promise<ItemOutcome[]> {
    const answer = await this.http.json<{ items: ItemOutcome[] }>({ method: "POST", path: "/v1/tasks/fail", body: { items } }, call);
    return answer.items;
  }
}
