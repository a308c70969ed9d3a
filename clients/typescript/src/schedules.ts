import type { CallOptions, Transport } from "./http.js";
import { path } from "./path.js";
import type { Schedule, ScheduleInput } from "./types.js";

/** Recurring tasks: a cron expression or a fixed interval that enqueues a task per tick. */
export class Schedules {
  constructor(private readonly http: Transport) {}

  /** Creates or replaces the schedule `name`. */
  put(name: string, schedule: ScheduleInput, call?: CallOptions): Promise<Schedule> {
    return this.http.json({ method: "PUT", path: path`/v1/schedules/${name}`, body: schedule }, call);
  }

  get(name: string, call?: CallOptions): Promise<Schedule> {
    return this.http.json({ method: "GET", path: path`/v1/schedules/${name}` }, call);
  }

  async list(call?: CallOptions): Promise<Schedule[]> {
    const answer = await this.http.json<{ schedules: Schedule[] }>({ method: "GET", path: "/v1/schedules" }, call);
    return answer.schedules;
  }

  async delete(name: string, call?: CallOptions): Promise<void> {
    await this.http.json({ method: "DELETE", path: path`/v1/schedules/${name}` }, call);
  }

  /** Enqueues the schedule's task now, outside its ticks. */
  trigger(name: string, call?: CallOptions): Promise<Schedule> {
    return this.http.json({ method: "POST", path: path`/v1/schedules/${name}/trigger` }, call);
  }

  pause(name: string, call?: CallOptions): Promise<Schedule> {
    return this.http.json({ method: "POST", path: path`/v1/schedules/${name}/pause` }, call);
  }

  resume(name: string, call?: CallOptions): Promise<Schedule> {
    return this.http.json({ method: "POST", path: path`/v1/schedules/${name}/resume` }, call);
  }
}
