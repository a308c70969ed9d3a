//! Rota's core: the task model, the lifecycle rules (state transitions, retries, backoff), ids,
//! time and limits. Pure logic: nothing here does I/O, knows of HTTP or SQL, or reads the clock
//! directly (a [`Clock`] is passed in).

pub mod audit;
pub mod auth;
pub mod backoff;
pub mod clock;
pub mod event_types;
pub mod events;
pub mod flow;
pub mod flow_stats;
pub mod flow_walk;
pub mod hooks;
pub mod id;
pub mod lifecycle;
pub mod limits;
pub mod maintenance;
pub mod model;
pub mod objects;
pub mod schedule;
pub mod spawn;
pub mod timestamp;
pub mod trace;
pub mod webhooks;
pub mod workflow;

pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use id::{IdGenerator, TaskId};
pub use limits::Limits;
pub use model::*;
pub use timestamp::Timestamp;
