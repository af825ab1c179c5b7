//! The loader's HTTP API (neptune-reference.md §2): routes, parameters, and Neptune's response
//! and error shapes, so `aws-sdk-neptunedata` and raw HTTP clients work unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use idgraph_storage::Store;
use serde_json::{Map, Value, json};

use crate::execute::Source;
use crate::jobs::{Jobs, Refusal};
use crate::model::LoadRequest;
use crate::sandbox::Sandbox;
use crate::sigv4::SigV4Credentials;

#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub jobs: Arc<Jobs>,
    pub storage: Arc<Store>,
    pub sigv4: Option<Arc<SigV4Credentials>>,
    pub started: u64,
    /// The graph store's file, opened read-only per summary request.
    pub graph_path: std::path::PathBuf,
    /// What local and S3 sources may be read, and which hosts are answered.
    pub sandbox: Arc<Sandbox>,
    /// The address it listens on (a `Host` naming it is answered).
    pub listening: std::net::SocketAddr,
    /// Whether the graph records its changes (the stream endpoints answer).
    pub streams: bool,
}

pub(crate) fn router(api: Api) -> Router {
    Router::new()
        .route(
            "/loader",
            get(get_loader).post(start).delete(cancel_by_query),
        )
        .route("/loader/", get(get_loader).post(start))
        .route(
            "/loader/{load_id}",
            get(status_by_path).delete(cancel_by_path),
        )
        .route("/status", get(health))
        .route("/propertygraph/statistics/summary", get(summary))
        .route("/pg/statistics/summary", get(summary))
        .route("/propertygraph/stream", get(stream))
        .route("/pg/stream", get(stream))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(api.clone(), guard))
        .with_state(api)
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Neptune's error body; the SDK reads the error type from `code` (and `x-amzn-errortype`).
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    let mut response = (
        status,
        axum::Json(json!({
            "code": code,
            "requestId": request_id(),
            "detailedMessage": message,
            "message": message,
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(code) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

fn ok(payload: Value) -> Response {
    axum::Json(json!({ "status": "200 OK", "payload": payload })).into_response()
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::BadRequest(m) => error(StatusCode::BAD_REQUEST, "BadRequestException", m),
        Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, "BulkLoadIdNotFoundException", m),
        Refusal::Internal(m) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            m,
        ),
    }
}

/// Injected 5xx answers, then the SigV4 check when one is configured.
async fn guard(State(api): State<Api>, request: Request, next: Next) -> Response {
    if api.jobs.faults.take_failing_request() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            "Injected fault: the server failed this request",
        );
    }
    if let Err(message) = api.sandbox.check_request(request.headers(), api.listening) {
        return error(StatusCode::FORBIDDEN, "AccessDeniedException", message);
    }
    let Some(credentials) = &api.sigv4 else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequestException",
                e.to_string(),
            );
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if let Err(message) = credentials.verify(
        parts.method.as_str(),
        path_and_query,
        &parts.headers,
        &bytes,
    ) {
        return error(StatusCode::FORBIDDEN, "AccessDeniedException", message);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn health(State(api): State<Api>) -> Response {
    axum::Json(json!({
        "status": "healthy",
        "startTime": api.started,
        "dbEngineVersion": concat!("neptune-local-", env!("CARGO_PKG_VERSION")),
        "role": "writer",
    }))
    .into_response()
}

/// `GET /propertygraph/statistics/summary` (basic mode): the graph's size and labels, in the
/// shape Neptune's graph summary API answers. Computed on each request, so always current.
async fn summary(State(api): State<Api>, Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("mode").map(|m| m.to_ascii_lowercase()) {
        None => {}
        Some(m) if m == "basic" => {}
        Some(m) => {
            return bad_request(format!(
                "Parameter mode must be basic (neptune-local computes the basic summary only), not {m}"
            ));
        }
    }
    let path = api.graph_path.clone();
    let stats =
        tokio::task::spawn_blocking(move || crate::GraphStore::open(&path).and_then(|g| g.stats()))
            .await;
    match stats {
        Ok(Ok(stats)) => ok(json!({
            "version": "v1",
            "lastStatisticsComputationTime":
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            "graphSummary": {
                "numNodes": stats.vertices,
                "numEdges": stats.edges,
                "numNodeLabels": stats.vertex_labels.len(),
                "numEdgeLabels": stats.edge_labels.len(),
                "nodeLabels": stats.vertex_labels.keys().collect::<Vec<_>>(),
                "edgeLabels": stats.edge_labels.keys().collect::<Vec<_>>(),
            }
        })),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            e.to_string(),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            e.to_string(),
        ),
    }
}

/// `GET /propertygraph/stream` (and `/pg/stream`): the change stream, gzip-compressed when
/// the client accepts it.
async fn stream(
    State(api): State<Api>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    use crate::stream::{StreamError, StreamRequest};
    if !api.streams {
        return error(
            StatusCode::BAD_REQUEST,
            "UnsupportedOperationException",
            "Neptune Streams is not enabled on this server (it runs with --no-streams)",
        );
    }
    let request = match StreamRequest::parse(&query) {
        Ok(request) => request,
        Err(e) => return stream_error(e),
    };
    let path = api.graph_path.clone();
    let answer = tokio::task::spawn_blocking(move || crate::stream::read(&path, &request)).await;
    let body = match answer {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return stream_error(e),
        Err(e) => return stream_error(StreamError::Internal(e.to_string())),
    };
    let gzip = headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|e| e.trim().split(';').next() == Some("gzip"))
        });
    if !gzip {
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let compressed = std::io::Write::write_all(&mut encoder, &body).and_then(|()| encoder.finish());
    match compressed {
        Ok(bytes) => (
            [
                (axum::http::header::CONTENT_TYPE, "application/json"),
                (axum::http::header::CONTENT_ENCODING, "gzip"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => stream_error(StreamError::Internal(e.to_string())),
    }
}

fn stream_error(e: crate::stream::StreamError) -> Response {
    use crate::stream::StreamError;
    match e {
        StreamError::InvalidParameter(m) => {
            error(StatusCode::BAD_REQUEST, "InvalidParameterException", m)
        }
        StreamError::NotFound(m) => {
            error(StatusCode::NOT_FOUND, "StreamRecordsNotFoundException", m)
        }
        StreamError::Expired(m) => error(StatusCode::BAD_REQUEST, "ExpiredStreamException", m),
        StreamError::Internal(m) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            m,
        ),
    }
}

/// Lists the source on a plain thread: the storage client runs its own runtime.
async fn check_source(
    storage: Arc<Store>,
    sandbox: Arc<Sandbox>,
    source: String,
) -> Result<(), String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result =
            Source::parse(&source).and_then(|s| s.list(&storage, &sandbox, &source).map(|_| ()));
        let _ = tx.send(result);
    });
    rx.await
        .unwrap_or_else(|_| Err("the source check stopped unexpectedly".into()))
}

async fn start(
    State(api): State<Api>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    // A JSON body must say so: a web page can send `text/plain` across origins without asking,
    // but not `application/json`. Form-encoded bodies are taken as Neptune takes them.
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let params: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        query
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    } else if content_type == "application/x-www-form-urlencoded" {
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
            Ok(pairs) => pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
            Err(e) => return bad_request(format!("The request body is not a valid form: {e}")),
        }
    } else if content_type != "application/json" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BadRequestException",
            format!(
                "The request body must be application/json or application/x-www-form-urlencoded, \
                 not `{content_type}`"
            ),
        );
    } else {
        match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequestException",
                    "The request body must be a JSON object",
                );
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadRequestException",
                    format!("The request body is not valid JSON: {e}"),
                );
            }
        }
    };
    let request = match LoadRequest::parse(&params) {
        Ok(request) => request,
        Err(message) => {
            let code = if message.starts_with("Required parameter") {
                "MissingParameterException"
            } else {
                "BadRequestException"
            };
            return error(StatusCode::BAD_REQUEST, code, message);
        }
    };
    if let Err(message) = check_source(
        api.storage.clone(),
        api.sandbox.clone(),
        request.source.clone(),
    )
    .await
    {
        return error(StatusCode::BAD_REQUEST, "BadRequestException", message);
    }
    match api.jobs.submit(request) {
        Ok(id) => ok(json!({ "loadId": id })),
        Err(refusal) => refused(refusal),
    }
}

/// `Err` is the message of a 400 answer.
fn flag(query: &HashMap<String, String>, key: &str, default: bool) -> Result<bool, String> {
    match query.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(format!("Parameter {key} must be TRUE or FALSE, not {v}")),
    }
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequestException", message)
}

fn positive(
    query: &HashMap<String, String>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, String> {
    match query.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "Parameter {key} must be a whole number from 1 to {max}, not {v}"
            )),
        },
    }
}

async fn get_loader(
    State(api): State<Api>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(id) = query.get("loadId") {
        return status(&api, id, &query);
    }
    let limit = match positive(&query, "limit", 100, 100) {
        Ok(n) => n,
        Err(message) => return bad_request(message),
    };
    let include_queued = match flag(&query, "includeQueuedLoads", true) {
        Ok(b) => b,
        Err(message) => return bad_request(message),
    };
    ok(json!({ "loadIds": api.jobs.list(limit as usize, include_queued) }))
}

async fn status_by_path(
    State(api): State<Api>,
    Path(load_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    status(&api, &load_id, &query)
}

fn status(api: &Api, id: &str, query: &HashMap<String, String>) -> Response {
    let parsed = (|| {
        let details = flag(query, "details", false)?;
        let errors = flag(query, "errors", false)?;
        let page = positive(query, "page", 1, u64::from(u32::MAX))?;
        let per_page = positive(query, "errorsPerPage", 10, u64::from(u32::MAX))?;
        Ok::<_, String>((details, errors.then_some((page, per_page))))
    })();
    let (details, errors) = match parsed {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    match api
        .jobs
        .with_load(id, |load| load.status_payload(details, errors))
    {
        Some(payload) => ok(payload),
        None => error(
            StatusCode::BAD_REQUEST,
            "BulkLoadIdNotFoundException",
            format!("The load with id = {id} does not exist"),
        ),
    }
}

async fn cancel_by_path(State(api): State<Api>, Path(load_id): Path<String>) -> Response {
    cancel(&api, &load_id)
}

async fn cancel_by_query(
    State(api): State<Api>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match query.get("loadId") {
        Some(id) => cancel(&api, id),
        None => error(
            StatusCode::BAD_REQUEST,
            "MissingParameterException",
            "Required parameter loadId is missing",
        ),
    }
}

/// Success is 200 with no body (§2.9).
fn cancel(api: &Api, id: &str) -> Response {
    match api.jobs.cancel(id) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(refusal) => refused(refusal),
    }
}

/// Answers for anything else, in Neptune's error shape.
async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "UnsupportedOperationException",
        format!(
            "neptune-local serves the bulk loader API only: no {method} {}",
            uri.path()
        ),
    )
}
