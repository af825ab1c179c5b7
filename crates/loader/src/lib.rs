//! Drives the Neptune bulk loader for the identity graph: full and incremental runs that
//! transform what is new, stage the graph files on S3 (or load them in place on the local
//! default), load vertices then edges, and keep durable state so that a run killed at any point
//! resumes without loading anything twice.
//!
//! ```text
//! sources (local or S3) --transform--> graph batch --upload--> S3 stage --POST /loader--> Neptune
//!                                                   (state.json: watermark, batches, load ids; lock)
//! ```
//!
//! With no Neptune endpoint configured it starts `neptune-local` in-process and loads the local
//! folder in place: the whole pipeline runs on a laptop.

mod config;
mod neptune;
mod pipeline;
mod state;

pub use config::{Plan, Settings, Target, TransformPlan};
pub use idgraph_storage::{Lock, release_held_locks};
pub use neptune::{GraphSummary, LoadErrorEntry, LoadStatus, Neptune, NeptuneError, Phase, phase};
pub use pipeline::{
    BatchReport, FailedLoad, PlannedBatch, RunError, RunReport, Runner, error_line, lock_run,
    pending_batches, plan_only, upload,
};
pub use state::{BatchRecord, LOCK, LoadRecord, State, StateFile};
