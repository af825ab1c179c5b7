//! The stream's HTTP side: a GET of `/propertygraph/stream`, SigV4-signed for IAM database
//! authentication (service `neptune-db`), gzip accepted, and the answer parsed with our own
//! types: `aws-sdk-neptunedata` cannot parse the numbers Neptune sends (awslabs/aws-sdk-rust
//! issue 925).

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use serde::{Deserialize, Serialize};

use crate::StreamError;

/// A position in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId {
    #[serde(rename = "commitNum")]
    pub commit_num: u64,
    #[serde(rename = "opNum")]
    pub op_num: u64,
}

/// One change, as Neptune sends it (and as the change files keep it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub commit_timestamp: i64,
    pub event_id: EventId,
    pub data: Data,
    pub op: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_last_op: bool,
}

/// What changed: a vertex label (`vl`), vertex property (`vp`), edge (`e`) or edge property
/// (`ep`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Data {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    pub value: serde_json::Value,
    #[serde(rename = "dataType")]
    pub data_type: String,
}

impl Value {
    /// The value as text (numbers and booleans written as JSON writes them).
    pub fn text(&self) -> String {
        match &self.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    records: Vec<Record>,
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    TrimHorizon,
    Latest,
    After(EventId),
}

/// What a read gave.
#[derive(Debug)]
pub(crate) enum Fetched {
    Records(Vec<Record>),
    /// Nothing after the position yet (Neptune's 404 "from the future").
    CaughtUp,
}

/// How requests are signed: with the standard AWS credential chain and a region.
#[derive(Debug)]
struct Signer {
    region: String,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    runtime: tokio::runtime::Runtime,
}

/// A Neptune endpoint's stream.
#[derive(Debug)]
pub(crate) struct Client {
    base: String,
    http: reqwest::blocking::Client,
    signer: Option<Signer>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default, rename = "detailedMessage")]
    detailed_message: String,
}

impl Client {
    /// `endpoint`: `https://cluster:8182` or `http://127.0.0.1:8182`. With `iam_region`, every
    /// request is SigV4-signed for that region with the standard credential chain.
    pub(crate) fn new(endpoint: &str, iam_region: Option<&str>) -> Result<Client, StreamError> {
        let transport = |e: &dyn std::fmt::Display| StreamError::Transport(e.to_string());
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| transport(&e))?;
        let signer = match iam_region {
            None => None,
            Some(region) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| transport(&e))?;
                let config = runtime.block_on(
                    aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .region(aws_config::Region::new(region.to_owned()))
                        .load(),
                );
                let credentials = config.credentials_provider().ok_or_else(|| {
                    StreamError::Transport("no AWS credentials to sign requests with".into())
                })?;
                Some(Signer {
                    region: region.to_owned(),
                    credentials,
                    runtime,
                })
            }
        };
        Ok(Client {
            base: endpoint.trim_end_matches('/').to_owned(),
            http,
            signer,
        })
    }

    fn url(&self, from: From, limit: u64) -> String {
        let position = match from {
            From::TrimHorizon => "iteratorType=TRIM_HORIZON".to_owned(),
            From::Latest => "iteratorType=LATEST".to_owned(),
            From::After(e) => format!(
                "iteratorType=AFTER_SEQUENCE_NUMBER&commitNum={}&opNum={}",
                e.commit_num, e.op_num
            ),
        };
        format!(
            "{}/propertygraph/stream?{position}&limit={limit}",
            self.base
        )
    }

    fn sign(&self, url: &str) -> Result<Vec<(String, String)>, StreamError> {
        let Some(signer) = &self.signer else {
            return Ok(Vec::new());
        };
        let fail = |e: &dyn std::fmt::Display| StreamError::Transport(format!("signing: {e}"));
        let credentials = signer
            .runtime
            .block_on(signer.credentials.provide_credentials())
            .map_err(|e| fail(&e))?;
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&signer.region)
            .name("neptune-db")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| fail(&e))?
            .into();
        let parsed = reqwest::Url::parse(url).map_err(|e| fail(&e))?;
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_owned(),
        };
        let request = SignableRequest::new(
            "GET",
            url,
            [("host", host.as_str())].into_iter(),
            SignableBody::Bytes(&[]),
        )
        .map_err(|e| fail(&e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| fail(&e))?.into_parts();
        let (headers, _) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect())
    }

    /// Reads up to `limit` records from `from`.
    pub(crate) fn fetch(&self, from: From, limit: u64) -> Result<Fetched, StreamError> {
        let url = self.url(from, limit);
        let mut request = self.http.get(&url).header("Accept-Encoding", "gzip");
        for (name, value) in self.sign(&url)? {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .map_err(|e| StreamError::Transport(format!("GET {url}: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .map_err(|e| StreamError::Transport(format!("GET {url}: {e}")))?;
        if status.is_success() {
            let page: Page = serde_json::from_slice(&body).map_err(|e| StreamError::Response {
                url: url.clone(),
                message: e.to_string(),
            })?;
            return Ok(Fetched::Records(page.records));
        }
        let error: ErrorBody = serde_json::from_slice(&body).unwrap_or(ErrorBody {
            code: String::new(),
            detailed_message: String::from_utf8_lossy(&body).into_owned(),
        });
        match error.code.as_str() {
            // Past the head: nothing new yet. AWS's own poller treats it the same way.
            "StreamRecordsNotFoundException" if status.as_u16() == 404 => Ok(Fetched::CaughtUp),
            "ExpiredStreamException" => Err(StreamError::Expired(error.detailed_message)),
            code => Err(StreamError::Refused {
                status: status.as_u16(),
                code: code.to_owned(),
                message: error.detailed_message,
            }),
        }
    }
}
