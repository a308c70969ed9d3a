/**
 * The runs the worker runtime supervises in this process, by lease, and whether each has handed
 * its task off by spawning (`tasks.spawn`): the task gave up its lease, so the run must report
 * nothing and a heartbeat's `lease_lost` is expected. Only leases a worker registers are kept,
 * each until its handler has returned.
 */
type RunState = "running" | "spawning" | "spawned";

const runs = new Map<string, RunState>();

/** A worker begins a run under `lease`. */
export function watchRun(lease: string): void {
  runs.set(lease, "running");
}

/** The run under `lease` has returned: forget it. */
export function forgetRun(lease: string): void {
  runs.delete(lease);
}

/** A spawn under `lease` is being sent: its lease may be gone before the answer comes. */
export function spawning(lease: string): void {
  if (runs.get(lease) === "running") runs.set(lease, "spawning");
}

/** A spawn under `lease` was answered: stored (`ok`), or refused and the lease is as it was. */
export function spawnAnswered(lease: string, ok: boolean): void {
  const state = runs.get(lease);
  if (state === undefined || state === "spawned") return;
  runs.set(lease, ok ? "spawned" : "running");
}

/** The run's task waits for tasks it spawned: its lease is given up. */
export function handedOff(lease: string): boolean {
  return runs.get(lease) === "spawned";
}

/** A spawn was sent or stored under `lease`, so the lease may be given up. */
export function handingOff(lease: string): boolean {
  const state = runs.get(lease);
  return state === "spawning" || state === "spawned";
}
