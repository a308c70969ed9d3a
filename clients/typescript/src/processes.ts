import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { WorkerProcess } from "./types.js";

/** Worker processes connected through the Faktory door, and their signals. */
export class Processes {
  constructor(private readonly http: Transport) {}

  async list(call?: CallOptions): Promise<WorkerProcess[]> {
    const answer = await this.http.json<{ workers: WorkerProcess[] }>({ method: "GET", path: "/v1/workers" }, call);
    return answer.workers;
  }

  /** The worker's next beat is answered `quiet`: it fetches no more jobs. */
  quiet(wid: string, call?: CallOptions): Promise<WorkerProcess> {
    return this.http.json({ method: "POST", path: path`/v1/workers/${wid}/quiet` }, call);
  }

  /** The worker's next beat is answered `terminate`: it fails back its jobs and exits. */
  terminate(wid: string, call?: CallOptions): Promise<WorkerProcess> {
    return this.http.json({ method: "POST", path: path`/v1/workers/${wid}/terminate` }, call);
  }
}
