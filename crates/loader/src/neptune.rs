//! The Neptune side, through `aws-sdk-neptunedata` (SigV4 as `neptune-db`): start a load, read
//! its status and error log, cancel it, list loads; one poll loop with backoff and a deadline.

use std::time::{Duration, Instant};

use aws_sdk_neptunedata::Client;
use aws_sdk_neptunedata::config::retry::RetryConfig;
use aws_sdk_neptunedata::types::{Format, Mode, Parallelism, S3BucketRegion};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Plan, Target};

/// A loader call failed; the message names the load or source.
#[derive(Debug, thiserror::Error)]
pub enum NeptuneError {
    /// The endpoint does not know the load (Neptune keeps only recent loads).
    #[error("{0}")]
    LoadNotFound(String),
    #[error("{0}")]
    Call(String),
}

/// The counters of a load (neptune-reference.md §2.6).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct LoadStatus {
    pub status: String,
    /// The source the load reads, as it was given.
    #[serde(default)]
    pub full_uri: String,
    pub total_records: u64,
    pub total_duplicates: u64,
    pub parsing_errors: u64,
    pub datatype_mismatch_errors: u64,
    pub insert_errors: u64,
    pub total_time_spent: f64,
}

impl LoadStatus {
    pub fn errors(&self) -> u64 {
        self.parsing_errors + self.datatype_mismatch_errors + self.insert_errors
    }
}

/// The graph as the endpoint's summary API reports it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GraphSummary {
    pub vertices: u64,
    pub edges: u64,
    pub vertex_labels: Vec<String>,
    pub edge_labels: Vec<String>,
}

/// One entry of a load's error log.
#[derive(Debug, Clone, Serialize)]
pub struct LoadErrorEntry {
    pub code: String,
    pub message: String,
    pub file: String,
    pub record: u64,
}

/// What a status code means for a run (§2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not finished: keep polling (`LOAD_NOT_STARTED` and `LOAD_IN_QUEUE` included, and codes
    /// not in the documentation, until the deadline).
    Running,
    Completed,
    Failed,
}

pub fn phase(status: &str) -> Phase {
    match status {
        "LOAD_COMPLETED" => Phase::Completed,
        "LOAD_CANCELLED_BY_USER"
        | "LOAD_CANCELLED_DUE_TO_ERRORS"
        | "LOAD_UNEXPECTED_ERROR"
        | "LOAD_FAILED"
        | "LOAD_S3_READ_ERROR"
        | "LOAD_S3_ACCESS_DENIED_ERROR"
        | "LOAD_DATA_DEADLOCK"
        | "LOAD_DATA_FAILED_DUE_TO_FEED_MODIFIED_OR_DELETED"
        | "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED"
        | "LOAD_FAILED_INVALID_REQUEST" => Phase::Failed,
        // LOAD_COMMITTED_W_WRITE_CONFLICTS is final only when it stops changing: the loader
        // retries the conflicts itself; at the deadline it is reported for a resume.
        _ => Phase::Running,
    }
}

/// A connected loader endpoint; for the local default, it also owns the local server.
#[derive(Debug)]
pub struct Neptune {
    runtime: tokio::runtime::Runtime,
    /// No retries: a start the client retried could submit the load twice.
    start_client: Client,
    /// Standard retries (5xx, throttling, timeouts) for reads and cancels.
    client: Client,
    local: Option<neptune_local::Server>,
    pub endpoint: String,
}

/// One load to start.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub source: String,
    pub dependencies: Vec<String>,
    /// The loader's mode for this load, instead of the plan's.
    pub mode: Option<String>,
}

fn describe(e: impl std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

impl Neptune {
    /// Connects to the configured endpoint, or starts the local one.
    pub fn connect(plan: &Plan) -> Result<Neptune, NeptuneError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| NeptuneError::Call(format!("cannot start the client runtime: {e}")))?;
        let (endpoint, local) = match &plan.target {
            Target::Remote { endpoint } => (endpoint.clone(), None),
            Target::Local { data_dir } => {
                // It reads the root's graph folders in place: the root is what it may read.
                let mut source_dirs = vec![data_dir.clone()];
                if let idgraph_storage::Location::Local(root) = &plan.root {
                    source_dirs.push(root.clone());
                }
                // And the stage's bucket, when the root's graph is staged on S3.
                let allowed_buckets = plan
                    .stage
                    .iter()
                    .filter_map(|s| match s {
                        idgraph_storage::Location::S3 { bucket, .. } => Some(bucket.clone()),
                        idgraph_storage::Location::Local(_) => None,
                    })
                    .collect();
                let server = neptune_local::Server::start(neptune_local::Config {
                    local_source_dirs: source_dirs,
                    allowed_buckets,
                    // Its error log keeps the data's values only when the user asked for them.
                    show_values: plan.show_values,
                    ..neptune_local::Config::new(
                        data_dir.clone(),
                        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    )
                })
                .map_err(|e| NeptuneError::Call(format!("cannot start the local endpoint: {e}")))?;
                (server.endpoint(), Some(server))
            }
        };
        let region = plan.region.clone();
        let shared = runtime.block_on(async {
            let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(region));
            // The local endpoint checks no signature: it needs no AWS credentials at all.
            let loader = if local.is_some() {
                loader.credentials_provider(aws_sdk_neptunedata::config::Credentials::new(
                    "neptune-local",
                    "neptune-local",
                    None,
                    None,
                    "neptune-local",
                ))
            } else {
                loader
            };
            loader.load().await
        });
        let build = |retry: RetryConfig| {
            Client::from_conf(
                aws_sdk_neptunedata::config::Builder::from(&shared)
                    .endpoint_url(&endpoint)
                    .retry_config(retry)
                    .build(),
            )
        };
        Ok(Neptune {
            start_client: build(RetryConfig::disabled()),
            client: build(
                RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(200)),
            ),
            runtime,
            local,
            endpoint,
        })
    }

    /// The local server, when this is the local default.
    pub fn local(&self) -> Option<&neptune_local::Server> {
        self.local.as_ref()
    }

    /// Starts a load (queued behind any running one). Never retried by the client.
    pub fn start(&self, plan: &Plan, request: &LoadRequest) -> Result<String, NeptuneError> {
        let mut builder = self
            .start_client
            .start_loader_job()
            .source(&request.source)
            .format(Format::Csv)
            .s3_bucket_region(S3BucketRegion::from(plan.region.as_str()))
            .iam_role_arn(&plan.iam_role_arn)
            // AUTO (the default) on a per-batch prefix: a resubmission after a crash resumes the
            // earlier load of the same files instead of loading them again.
            .mode(Mode::from(request.mode.as_deref().unwrap_or(&plan.mode)))
            .fail_on_error(plan.fail_on_error)
            .parallelism(Parallelism::from(plan.parallelism.as_str()))
            .update_single_cardinality_properties(plan.update_single_cardinality_properties)
            // Without queueing, the edge load (which depends on the vertex load) would be
            // refused while the vertex load runs; the loader then waits for its turn itself.
            .queue_request(plan.queue_request || !request.dependencies.is_empty());
        if plan.allow_empty_strings {
            builder = builder.parser_configuration("allowEmptyStrings", "true");
        }
        for dependency in &request.dependencies {
            builder = builder.dependencies(dependency);
        }
        let out = self.runtime.block_on(builder.send()).map_err(|e| {
            NeptuneError::Call(format!(
                "cannot start a load of {}: {}",
                request.source,
                describe(e)
            ))
        })?;
        out.payload().get("loadId").cloned().ok_or_else(|| {
            NeptuneError::Call(format!(
                "the loader accepted {} but returned no loadId",
                request.source
            ))
        })
    }

    fn status_payload(&self, id: &str, page: Option<i32>) -> Result<Value, NeptuneError> {
        let mut request = self.client.get_loader_job_status().load_id(id);
        if let Some(page) = page {
            request = request.errors(true).page(page).errors_per_page(100);
        }
        let out = self.runtime.block_on(request.send()).map_err(|e| {
            let not_found = e
                .as_service_error()
                .is_some_and(|s| s.is_bulk_load_id_not_found_exception());
            let message = format!("cannot read the status of load {id}: {}", describe(e));
            if not_found {
                NeptuneError::LoadNotFound(message)
            } else {
                NeptuneError::Call(message)
            }
        })?;
        Ok(neptune_local::payload_json(out.payload()))
    }

    /// The load's overall status and counters.
    pub fn status(&self, id: &str) -> Result<LoadStatus, NeptuneError> {
        let payload = self.status_payload(id, None)?;
        let o = &payload["overallStatus"];
        let n = |k: &str| o[k].as_u64().unwrap_or(0);
        Ok(LoadStatus {
            status: o["status"].as_str().unwrap_or("UNKNOWN").to_owned(),
            full_uri: o["fullUri"].as_str().unwrap_or_default().to_owned(),
            total_records: n("totalRecords"),
            total_duplicates: n("totalDuplicates"),
            parsing_errors: n("parsingErrors"),
            datatype_mismatch_errors: n("datatypeMismatchErrors"),
            insert_errors: n("insertErrors"),
            total_time_spent: o["totalTimeSpent"].as_f64().unwrap_or(0.0),
        })
    }

    /// Every page of the load's error log.
    pub fn errors(&self, id: &str) -> Result<Vec<LoadErrorEntry>, NeptuneError> {
        let mut all = Vec::new();
        for page in 1.. {
            let payload = self.status_payload(id, Some(page))?;
            let logs = payload["errors"]["errorLogs"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if logs.is_empty() {
                break;
            }
            let full = logs.len() == 100;
            all.extend(logs.iter().map(|e| LoadErrorEntry {
                code: e["errorCode"].as_str().unwrap_or_default().to_owned(),
                message: e["errorMessage"].as_str().unwrap_or_default().to_owned(),
                file: e["fileName"].as_str().unwrap_or_default().to_owned(),
                record: e["recordNum"].as_u64().unwrap_or(0),
            }));
            if !full {
                break;
            }
        }
        Ok(all)
    }

    pub fn cancel(&self, id: &str) -> Result<(), NeptuneError> {
        self.runtime
            .block_on(self.client.cancel_loader_job().load_id(id).send())
            .map(|_| ())
            .map_err(|e| NeptuneError::Call(format!("cannot cancel load {id}: {}", describe(e))))
    }

    /// Load ids, newest first (queued ones first).
    pub fn list(&self, limit: i32) -> Result<Vec<String>, NeptuneError> {
        let out = self
            .runtime
            .block_on(self.client.list_loader_jobs().limit(limit).send())
            .map_err(|e| NeptuneError::Call(format!("cannot list loads: {}", describe(e))))?;
        Ok(out
            .payload()
            .map(|p| p.load_ids().to_vec())
            .unwrap_or_default())
    }

    /// The loads the endpoint knows (the newest 100, as `list` gives them) with their status.
    fn loads(&self) -> Result<Vec<(String, LoadStatus)>, NeptuneError> {
        let mut out = Vec::new();
        for id in self.list(100)? {
            match self.status(&id) {
                Ok(status) => out.push((id, status)),
                // Forgotten between the list and the status read.
                Err(NeptuneError::LoadNotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The ids of the loads the endpoint knows that read `source` (its `fullUri`).
    pub fn loads_of(&self, source: &str) -> Result<Vec<String>, NeptuneError> {
        Ok(self
            .loads()?
            .into_iter()
            .filter(|(_, status)| status.full_uri == source)
            .map(|(id, _)| id)
            .collect())
    }

    /// The newest load the endpoint knows that reads `source` (its `fullUri`) and is none of
    /// `known`, with its status: how a run that died between asking for a load and recording
    /// its id finds that load. `known` holds the loads of the source that were there before it
    /// was asked for; the list holds only the newest loads, so one older than them is not in
    /// it either.
    pub fn find_load_of(
        &self,
        source: &str,
        known: &[String],
    ) -> Result<Option<(String, LoadStatus)>, NeptuneError> {
        Ok(self
            .loads()?
            .into_iter()
            .find(|(id, status)| status.full_uri == source && !known.contains(id)))
    }

    /// The graph's size and labels, from the endpoint's graph summary API
    /// (`GET /propertygraph/statistics/summary`), as a cluster reports them.
    pub fn summary(&self) -> Result<GraphSummary, NeptuneError> {
        let out = self
            .runtime
            .block_on(self.client.get_propertygraph_summary().send())
            .map_err(|e| {
                NeptuneError::Call(format!("cannot read the graph summary: {}", describe(e)))
            })?;
        let summary = out.payload().and_then(|p| p.graph_summary());
        let count = |n: Option<i64>| n.unwrap_or(0).max(0) as u64;
        Ok(GraphSummary {
            vertices: count(summary.and_then(|s| s.num_nodes())),
            edges: count(summary.and_then(|s| s.num_edges())),
            vertex_labels: summary
                .map(|s| s.node_labels().to_vec())
                .unwrap_or_default(),
            edge_labels: summary
                .map(|s| s.edge_labels().to_vec())
                .unwrap_or_default(),
        })
    }

    /// Polls until the load ends, backing off from 200 ms to 5 s. Past `timeout` the load is
    /// cancelled and an error returned. `on_status` sees every status read.
    pub fn wait(
        &self,
        id: &str,
        timeout: Duration,
        mut on_status: impl FnMut(&LoadStatus),
    ) -> Result<LoadStatus, NeptuneError> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(200);
        loop {
            let status = self.status(id)?;
            on_status(&status);
            if phase(&status.status) != Phase::Running {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let cancelled = self.cancel(id);
                return Err(NeptuneError::Call(format!(
                    "load {id} was still {} after {} s; {}",
                    status.status,
                    timeout.as_secs(),
                    match cancelled {
                        Ok(()) => "it was cancelled".to_owned(),
                        Err(e) => format!("cancelling it failed: {e}"),
                    }
                )));
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 3 / 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_statuses_are_not_finished_and_failures_are_failures() {
        for running in [
            "LOAD_NOT_STARTED",
            "LOAD_IN_QUEUE",
            "LOAD_IN_PROGRESS",
            "LOAD_COMMITTED_W_WRITE_CONFLICTS",
            "LOAD_SOMETHING_NEW",
        ] {
            assert_eq!(phase(running), Phase::Running, "{running}");
        }
        assert_eq!(phase("LOAD_COMPLETED"), Phase::Completed);
        for failed in [
            "LOAD_FAILED",
            "LOAD_CANCELLED_BY_USER",
            "LOAD_S3_READ_ERROR",
            "LOAD_FAILED_BECAUSE_DEPENDENCY_NOT_SATISFIED",
            "LOAD_DATA_DEADLOCK",
        ] {
            assert_eq!(phase(failed), Phase::Failed, "{failed}");
        }
    }
}
