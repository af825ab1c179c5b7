//! Where the toolkit reads and writes files: a local folder or an S3 prefix, behind one small
//! blocking API shared by `transform`, the loader and the local loader endpoint.
//!
//! S3 goes through `aws-sdk-s3` with the standard AWS configuration (credential chain,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`), so a local S3-compatible server is a
//! matter of environment. Nothing here names a region, bucket or credential.

mod lock;

pub use lock::{Lock, release_held_locks};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A storage operation failed; the message names the path or URI and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

type Error = StorageError;

/// A folder or an S3 prefix. Keys below it use `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Location, String> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "`{s}` names no bucket (expected s3://BUCKET/PREFIX)"
                ));
            }
            let prefix = prefix.trim_matches('/').to_owned();
            Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix,
            })
        } else if s.is_empty() {
            Err("an empty path".to_owned())
        } else {
            Ok(Location::Local(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl Location {
    /// The location of `key` (a relative path with `/` separators) below this one.
    pub fn join(&self, key: &str) -> Location {
        let key = key.trim_matches('/');
        match self {
            Location::Local(path) => Location::Local(path.join(key)),
            Location::S3 { bucket, prefix } => Location::S3 {
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    key.to_owned()
                } else if key.is_empty() {
                    prefix.clone()
                } else {
                    format!("{prefix}/{key}")
                },
            },
        }
    }
}

/// What a conditional write requires of the object already there.
#[derive(Debug, Clone, Copy)]
enum Condition<'a> {
    /// No object (`If-None-Match: *`).
    Absent,
    /// The object with this ETag (`If-Match`).
    ETag(&'a str),
}

/// Server-side encryption of uploaded objects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    None,
    /// SSE-S3.
    #[default]
    Aes256,
    /// SSE-KMS, with the bucket's default key when no key id is given.
    Kms(Option<String>),
}

impl Encryption {
    /// From a setting's words: `AES256` (SSE-S3), `aws:kms` (SSE-KMS, with `kms_key_id` or the
    /// bucket's default key) or `none`, in any case. A key id with anything but `aws:kms` is
    /// refused: it would be dropped without a word.
    pub fn from_setting(name: &str, kms_key_id: Option<String>) -> Result<Encryption, String> {
        let encryption = match name.to_ascii_lowercase().as_str() {
            "aes256" => Encryption::Aes256,
            "aws:kms" | "kms" => {
                if let Some(key) = kms_key_id
                    .as_deref()
                    .filter(|k| k.starts_with("alias/") || k.contains(":alias/"))
                {
                    return Err(format!(
                        "KMS key {key}: give the key's id or ARN; an alias cannot be confirmed \
                         against the server's answer, which names the key"
                    ));
                }
                return Ok(Encryption::Kms(kms_key_id));
            }
            "none" => Encryption::None,
            other => {
                return Err(format!(
                    "encryption `{other}`: expected AES256, aws:kms or none"
                ));
            }
        };
        match kms_key_id {
            Some(key) => Err(format!(
                "a KMS key id ({key}) goes with encryption aws:kms, not {name}"
            )),
            None => Ok(encryption),
        }
    }

    /// The `x-amz-server-side-encryption` value S3 is asked for; `None` for no encryption.
    pub fn algorithm(&self) -> Option<&'static str> {
        match self {
            Encryption::None => None,
            Encryption::Aes256 => Some("AES256"),
            Encryption::Kms(_) => Some("aws:kms"),
        }
    }

    /// The KMS key id asked for, if one is.
    pub fn kms_key_id(&self) -> Option<&str> {
        match self {
            Encryption::Kms(Some(key)) => Some(key),
            _ => None,
        }
    }
}

/// A file found under a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The path or URI, for people.
    pub name: String,
    /// The path relative to the listed location, with `/` separators.
    pub relative: String,
    pub size: u64,
}

/// Objects larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 64 << 20;
/// The size of each part of a multipart upload (S3 takes 5 MiB to 5 GiB).
const PART_BYTES: usize = 16 << 20;

/// Reads and writes locations. The S3 client and its runtime are made on first use.
#[derive(Debug, Default)]
pub struct Store {
    s3: std::sync::OnceLock<Result<S3, String>>,
    /// An explicit S3 endpoint and static credentials instead of the standard configuration.
    endpoint: Option<(String, String, String)>,
    multipart_threshold: Option<usize>,
    /// Server-side encryption of every object this store writes (SSE-S3 unless told).
    encryption: Encryption,
}

#[derive(Debug)]
struct S3 {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
}

fn s3_error(action: &str, uri: &str, e: impl std::error::Error) -> Error {
    // The SDK's Display is terse ("service error"); its source chain says what happened.
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    StorageError(format!("{action} {uri}: {message}"))
}

impl Store {
    /// A store whose S3 client talks to `endpoint` (path-style) with these static credentials,
    /// whatever the environment says: for tests against a local S3-compatible server.
    pub fn for_endpoint(endpoint: &str, access_key_id: &str, secret_access_key: &str) -> Store {
        Store {
            endpoint: Some((
                endpoint.to_owned(),
                access_key_id.to_owned(),
                secret_access_key.to_owned(),
            )),
            ..Store::default()
        }
    }

    /// Every object this store writes is encrypted so (default SSE-S3, `AES256`), and the
    /// server's answer must confirm it.
    pub fn with_encryption(mut self, encryption: Encryption) -> Store {
        self.encryption = encryption;
        self
    }

    /// Uploads objects larger than `bytes` in parts (default 64 MiB; parts are 16 MiB, the
    /// last one smaller).
    pub fn with_multipart_threshold(mut self, bytes: usize) -> Store {
        self.multipart_threshold = Some(bytes);
        self
    }

    fn s3(&self) -> Result<&S3, Error> {
        self.s3
            .get_or_init(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the S3 runtime: {e}"))?;
                if let Some((endpoint, key, secret)) = &self.endpoint {
                    let config = aws_sdk_s3::config::Builder::new()
                        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                        .region(aws_sdk_s3::config::Region::new("us-east-1"))
                        .endpoint_url(endpoint)
                        .credentials_provider(aws_sdk_s3::config::Credentials::new(
                            key, secret, None, None, "explicit",
                        ))
                        .force_path_style(true)
                        .build();
                    let client = aws_sdk_s3::Client::from_conf(config);
                    return Ok(S3 { runtime, client });
                }
                let client = runtime.block_on(async {
                    let shared =
                        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                    let mut builder = aws_sdk_s3::config::Builder::from(&shared);
                    // Local S3-compatible servers (a custom endpoint) are addressed by path;
                    // AWS itself by virtual host.
                    if std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
                        || std::env::var_os("AWS_ENDPOINT_URL").is_some()
                    {
                        builder = builder.force_path_style(true);
                    }
                    aws_sdk_s3::Client::from_conf(builder.build())
                });
                Ok(S3 { runtime, client })
            })
            .as_ref()
            .map_err(|e| StorageError(e.clone()))
    }

    /// Every file below `location`, sorted by relative path.
    pub fn list(&self, location: &Location) -> Result<Vec<Object>, Error> {
        let mut objects = match location {
            Location::Local(root) => list_local(root)?,
            Location::S3 { bucket, prefix } => {
                let list_prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                self.list_key_prefix(bucket, &list_prefix)?
            }
        };
        objects.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(objects)
    }

    /// Every object of `bucket` whose key starts with `key_prefix` exactly as given, with no `/`
    /// added: `a` matches `a/b`, `ab` and `a.csv`, as S3's ListObjects (and so Neptune's loader
    /// `source`) reads a prefix. `relative` is the key after the prefix; sorted by key.
    pub fn list_key_prefix(&self, bucket: &str, key_prefix: &str) -> Result<Vec<Object>, Error> {
        let s3 = self.s3()?;
        let uri = format!("s3://{bucket}/{key_prefix}");
        let mut objects = s3.runtime.block_on(async {
            let mut out = Vec::new();
            let mut pages = s3
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(key_prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| s3_error("cannot list", &uri, e))?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    // Folder placeholders hold nothing.
                    if key.ends_with('/') {
                        continue;
                    }
                    out.push(Object {
                        name: format!("s3://{bucket}/{key}"),
                        relative: key.get(key_prefix.len()..).unwrap_or(key).to_owned(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            Ok::<_, Error>(out)
        })?;
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    pub fn read(&self, location: &Location) -> Result<Vec<u8>, Error> {
        match location {
            Location::Local(path) => std::fs::read(path)
                .map_err(|e| StorageError(format!("cannot read {}: {e}", path.display()))),
            Location::S3 { bucket, prefix } => {
                let s3 = self.s3()?;
                let uri = location.to_string();
                s3.runtime.block_on(async {
                    let out = s3
                        .client
                        .get_object()
                        .bucket(bucket)
                        .key(prefix)
                        .send()
                        .await
                        .map_err(|e| s3_error("cannot read", &uri, e))?;
                    let bytes = out
                        .body
                        .collect()
                        .await
                        .map_err(|e| s3_error("cannot read", &uri, e))?;
                    Ok(bytes.into_bytes().to_vec())
                })
            }
        }
    }

    /// Reads a whole object into `buf`, replacing what it held but keeping its memory: a
    /// caller that reads many large objects one after another allocates (and the kernel zeroes)
    /// one buffer, not one per object.
    pub fn read_into(&self, location: &Location, buf: &mut Vec<u8>) -> Result<(), Error> {
        buf.clear();
        match location {
            Location::Local(path) => std::fs::File::open(path)
                .and_then(|mut file| std::io::Read::read_to_end(&mut file, buf))
                .map(drop)
                .map_err(|e| StorageError(format!("cannot read {}: {e}", path.display()))),
            Location::S3 { .. } => {
                buf.extend_from_slice(&self.read(location)?);
                Ok(())
            }
        }
    }

    /// Writes a whole object. Locally through a temporary file, an fsync and a rename; on S3
    /// with the store's server-side encryption, confirmed by the server.
    pub fn write(&self, location: &Location, bytes: Vec<u8>) -> Result<(), Error> {
        match location {
            Location::Local(path) => write_local(path, &bytes),
            Location::S3 { bucket, prefix } => {
                let s3 = self.s3()?;
                let uri = location.to_string();
                let (sse, key) = sse(&self.encryption);
                s3.runtime.block_on(async {
                    let out = s3
                        .client
                        .put_object()
                        .bucket(bucket)
                        .key(prefix)
                        .set_server_side_encryption(sse)
                        .set_ssekms_key_id(key)
                        .body(bytes.into())
                        .send()
                        .await
                        .map_err(|e| s3_error("cannot write", &uri, e))?;
                    self.confirm_encryption(&uri, out.server_side_encryption(), out.ssekms_key_id())
                })
            }
        }
    }

    /// Writes a whole object from what `fill` writes into it, as [`Store::write`] does, but
    /// locally without holding it all in memory: `fill` writes through a buffer into the
    /// temporary file (a writer of hundreds of megabytes then costs a megabyte, not a copy of
    /// them). On S3 the bytes are gathered and written with [`Store::write`].
    ///
    /// An error from `fill` writes nothing, and is returned with the object's name.
    pub fn write_streamed(
        &self,
        location: &Location,
        fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        match location {
            Location::Local(path) => {
                let fail = |e: std::io::Error| {
                    StorageError(format!("cannot write {}: {e}", path.display()))
                };
                let mut temp = fresh_temp_beside(path).map_err(fail)?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
                fill(&mut out).map_err(fail)?;
                std::io::Write::flush(&mut out).map_err(fail)?;
                drop(out);
                commit_local(path, temp)
            }
            Location::S3 { .. } => {
                let mut bytes = Vec::new();
                fill(&mut bytes)
                    .map_err(|e| StorageError(format!("cannot write {location}: {e}")))?;
                self.write(location, bytes)
            }
        }
    }

    /// Fails unless the server says it applied the encryption asked for, with the KMS key
    /// asked for when one is: an S3-compatible server that ignores the header would otherwise
    /// store the object in the clear, and a bucket policy could swap the key.
    fn confirm_encryption(
        &self,
        uri: &str,
        applied: Option<&aws_sdk_s3::types::ServerSideEncryption>,
        applied_key: Option<&str>,
    ) -> Result<(), Error> {
        let (asked, asked_key) = sse(&self.encryption);
        match asked {
            Some(asked) if applied != Some(&asked) => Err(StorageError(format!(
                "{uri}: asked for server-side encryption {} but the server's answer says {}; the \
                 object may be stored unencrypted (set encryption to none to write without it)",
                asked.as_str(),
                applied.map_or("none", |a| a.as_str())
            ))),
            _ => match asked_key {
                Some(key) if !applied_key.is_some_and(|a| kms_key_matches(&key, a)) => {
                    Err(StorageError(format!(
                        "{uri}: asked for KMS key {key} but the server's answer names {}",
                        applied_key.unwrap_or("no key")
                    )))
                }
                _ => Ok(()),
            },
        }
    }

    /// Uploads a whole object with server-side encryption, its SHA-256 in the object's metadata
    /// (`x-amz-meta-sha256`, so a later run can skip an identical object) and an SHA-256
    /// checksum the server verifies. Locally it is [`Store::write`].
    pub fn put(&self, location: &Location, bytes: Vec<u8>, sha256_hex: &str) -> Result<(), Error> {
        let Location::S3 { bucket, prefix } = location else {
            return self.write(location, bytes);
        };
        let s3 = self.s3()?;
        let uri = location.to_string();
        if bytes.len() > self.multipart_threshold.unwrap_or(MULTIPART_THRESHOLD) {
            let (applied, key) = s3.runtime.block_on(multipart_upload(
                &s3.client,
                bucket,
                prefix,
                bytes,
                sha256_hex,
                &self.encryption,
                &uri,
            ))?;
            return self.confirm_encryption(&uri, applied.as_ref(), key.as_deref());
        }
        s3.runtime.block_on(async {
            let request = s3
                .client
                .put_object()
                .bucket(bucket)
                .key(prefix)
                .metadata("sha256", sha256_hex)
                .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
                .body(bytes.into());
            let (sse, key) = sse(&self.encryption);
            let out = request
                .set_server_side_encryption(sse)
                .set_ssekms_key_id(key)
                .send()
                .await
                .map_err(|e| s3_error("cannot upload", &uri, e))?;
            self.confirm_encryption(&uri, out.server_side_encryption(), out.ssekms_key_id())
        })
    }

    /// Writes an object only if none exists there: `Ok(false)` when one does. Locally an
    /// exclusive link of a complete file; on S3 a conditional write (`If-None-Match: *`), which
    /// S3 makes atomic (some S3-compatible servers do not: see the loader's lock).
    pub fn create_new(&self, location: &Location, bytes: Vec<u8>) -> Result<bool, Error> {
        match location {
            Location::Local(path) => {
                use std::io::Write;
                let fail = |e: std::io::Error| {
                    StorageError(format!("cannot create {}: {e}", path.display()))
                };
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(fail)?;
                }
                // Written whole beside it, then linked into place: the link fails if the file
                // exists, and a reader never sees it half written.
                let mut temp = idgraph_core::process::temp_file_beside(path).map_err(fail)?;
                temp.write_all(&bytes).map_err(fail)?;
                temp.as_file().sync_all().map_err(fail)?;
                match std::fs::hard_link(temp.path(), path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(fail(e)),
                }
            }
            Location::S3 { .. } => Ok(self
                .conditional_put(location, bytes, Condition::Absent)?
                .is_some()),
        }
    }

    /// An object's content and ETag, `None` when there is none. S3 only: the ETag is what
    /// [`Store::write_if_match`] compares.
    pub fn read_versioned(&self, location: &Location) -> Result<Option<(Vec<u8>, String)>, Error> {
        let Location::S3 { bucket, prefix } = location else {
            return Err(StorageError(format!(
                "{location}: versioned reads are for S3 objects"
            )));
        };
        let s3 = self.s3()?;
        let uri = location.to_string();
        s3.runtime.block_on(async {
            let out = match s3
                .client
                .get_object()
                .bucket(bucket)
                .key(prefix)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Ok(None);
                }
                Err(e) => return Err(s3_error("cannot read", &uri, e)),
            };
            let etag = out.e_tag().unwrap_or_default().to_owned();
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| s3_error("cannot read", &uri, e))?;
            Ok(Some((bytes.into_bytes().to_vec(), etag)))
        })
    }

    /// Replaces an S3 object only if its ETag is still `etag` (`If-Match`): a fenced write.
    /// `Ok(None)` when another writer changed or removed it first; otherwise the new ETag.
    pub fn write_if_match(
        &self,
        location: &Location,
        bytes: Vec<u8>,
        etag: &str,
    ) -> Result<Option<String>, Error> {
        self.conditional_put(location, bytes, Condition::ETag(etag))
    }

    /// A PUT that the server performs only under `condition`, with the store's encryption:
    /// `Ok(None)` when the condition does not hold (412, or 409 for a concurrent write),
    /// otherwise the new object's ETag.
    fn conditional_put(
        &self,
        location: &Location,
        bytes: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<Option<String>, Error> {
        let Location::S3 { bucket, prefix } = location else {
            return Err(StorageError(format!(
                "{location}: conditional writes are for S3 objects"
            )));
        };
        let s3 = self.s3()?;
        let uri = location.to_string();
        let (sse, key) = sse(&self.encryption);
        let request = s3
            .client
            .put_object()
            .bucket(bucket)
            .key(prefix)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(key)
            .body(bytes.into());
        let request = match condition {
            Condition::Absent => request.if_none_match("*"),
            Condition::ETag(etag) => request.if_match(etag),
        };
        s3.runtime.block_on(async {
            match request.send().await {
                Ok(out) => {
                    self.confirm_encryption(
                        &uri,
                        out.server_side_encryption(),
                        out.ssekms_key_id(),
                    )?;
                    Ok(Some(out.e_tag().unwrap_or_default().to_owned()))
                }
                Err(e)
                    if e.raw_response().is_some_and(|r| {
                        r.status().as_u16() == 412 || r.status().as_u16() == 409
                    }) =>
                {
                    Ok(None)
                }
                Err(e) => Err(s3_error("cannot write", &uri, e)),
            }
        })
    }

    /// A store with the same endpoint and settings and a client of its own: for a thread that
    /// outlives a borrow of this one.
    pub fn detached(&self) -> Store {
        Store {
            s3: std::sync::OnceLock::new(),
            endpoint: self.endpoint.clone(),
            multipart_threshold: self.multipart_threshold,
            encryption: self.encryption.clone(),
        }
    }

    /// Removes one object or file; a missing one is not an error. Locally also what a write of
    /// it killed before its rename left (its temporary file), so that nothing of it remains.
    pub fn remove(&self, location: &Location) -> Result<(), Error> {
        match location {
            Location::Local(path) => match idgraph_core::process::remove_temp_files_beside(path)
                .and_then(|_| std::fs::remove_file(path))
            {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StorageError(format!(
                    "cannot remove {}: {e}",
                    path.display()
                ))),
            },
            Location::S3 { bucket, prefix } => {
                let s3 = self.s3()?;
                let uri = location.to_string();
                s3.runtime.block_on(async {
                    s3.client
                        .delete_object()
                        .bucket(bucket)
                        .key(prefix)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| s3_error("cannot delete", &uri, e))
                })
            }
        }
    }

    /// The SHA-256 an object was uploaded with by [`Store::put`], if it exists and has one.
    pub fn stored_sha256(&self, location: &Location) -> Result<Option<String>, Error> {
        let Location::S3 { bucket, prefix } = location else {
            return Ok(None);
        };
        Ok(self
            .head(bucket, prefix, &location.to_string())?
            .and_then(|head| head.metadata()?.get("sha256").cloned()))
    }

    /// Whether an object (or, locally, a file or folder) exists there.
    pub fn exists(&self, location: &Location) -> Result<bool, Error> {
        match location {
            Location::Local(path) => Ok(path.exists()),
            Location::S3 { bucket, prefix } => {
                Ok(self.head(bucket, prefix, &location.to_string())?.is_some())
            }
        }
    }

    /// An object's HEAD, `None` when there is no such object.
    fn head(
        &self,
        bucket: &str,
        key: &str,
        uri: &str,
    ) -> Result<Option<aws_sdk_s3::operation::head_object::HeadObjectOutput>, Error> {
        let s3 = self.s3()?;
        s3.runtime.block_on(async {
            match s3.client.head_object().bucket(bucket).key(key).send().await {
                Ok(head) => Ok(Some(head)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                // A HEAD answer has no body to name the error: its HTTP status does.
                Err(e) => {
                    let status = e
                        .raw_response()
                        .map(|r| format!(" (HTTP {})", r.status().as_u16()))
                        .unwrap_or_default();
                    Err(s3_error(&format!("cannot look up{status}"), uri, e))
                }
            }
        })
    }

    /// Removes every object below a location, and on S3 the object at its key too (a key can
    /// name an object and a prefix at once; `remove_all` of an object's key removes it).
    pub fn remove_all(&self, location: &Location) -> Result<(), Error> {
        match location {
            Location::Local(path) => match std::fs::remove_dir_all(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StorageError(format!(
                    "cannot remove {}: {e}",
                    path.display()
                ))),
            },
            Location::S3 { prefix, .. } => {
                for object in self.list(location)? {
                    self.remove(&location.join(&object.relative))?;
                }
                if prefix.is_empty() {
                    return Ok(());
                }
                self.remove(location)
            }
        }
    }
}

/// S3 answers with the key's ARN; the setting may give its id or its ARN.
fn kms_key_matches(asked: &str, answered: &str) -> bool {
    answered == asked || answered.ends_with(&format!(":key/{asked}"))
}

/// The server-side encryption settings of an upload.
fn sse(
    encryption: &Encryption,
) -> (
    Option<aws_sdk_s3::types::ServerSideEncryption>,
    Option<String>,
) {
    use aws_sdk_s3::types::ServerSideEncryption;
    match encryption {
        Encryption::None => (None, None),
        Encryption::Aes256 => (Some(ServerSideEncryption::Aes256), None),
        Encryption::Kms(key) => (Some(ServerSideEncryption::AwsKms), key.clone()),
    }
}

/// Uploads `bytes` in parts, several at once, each with a SHA-256 checksum the server checks;
/// aborts the upload (so no parts linger) when any part fails.
async fn multipart_upload(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
    sha256_hex: &str,
    encryption: &Encryption,
    uri: &str,
) -> Result<
    (
        Option<aws_sdk_s3::types::ServerSideEncryption>,
        Option<String>,
    ),
    Error,
> {
    use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
    let (sse, kms_key) = sse(encryption);
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .metadata("sha256", sha256_hex)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms_key)
        .send()
        .await
        .map_err(|e| s3_error("cannot start the upload of", uri, e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let bytes = bytes::Bytes::from(bytes);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, start) in (0..bytes.len()).step_by(PART_BYTES).enumerate() {
        let part = bytes.slice(start..(start + PART_BYTES).min(bytes.len()));
        let request = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(index as i32 + 1)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(part.into());
        tasks.spawn(async move { (index as i32 + 1, request.send().await) });
    }
    let mut parts = Vec::new();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((number, Ok(out))) => parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .set_checksum_sha256(out.checksum_sha256().map(str::to_owned))
                    .build(),
            ),
            Ok((number, Err(e))) => {
                failure.get_or_insert(s3_error(&format!("cannot upload part {number} of"), uri, e));
            }
            Err(e) => {
                failure.get_or_insert(StorageError(format!("an upload task of {uri} failed: {e}")));
            }
        }
    }
    if failure.is_none() {
        parts.sort_by_key(|p| p.part_number());
        let completed = client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match completed {
            Ok(out) => {
                return Ok((
                    out.server_side_encryption()
                        .or(created.server_side_encryption())
                        .cloned(),
                    out.ssekms_key_id()
                        .or(created.ssekms_key_id())
                        .map(str::to_owned),
                ));
            }
            Err(e) => failure = Some(s3_error("cannot complete the upload of", uri, e)),
        }
    }
    let _ = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await;
    Err(failure.unwrap_or_else(|| StorageError(format!("cannot upload {uri}"))))
}

fn list_local(root: &Path) -> Result<Vec<Object>, Error> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| StorageError(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| StorageError(format!("cannot list {}: {e}", dir.display())))?;
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(|e| StorageError(format!("cannot read {}: {e}", path.display())))?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(Object {
                    name: path.display().to_string(),
                    relative,
                    size: meta.len(),
                });
            }
        }
    }
    Ok(out)
}

fn write_local(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let fail = |e: std::io::Error| StorageError(format!("cannot write {}: {e}", path.display()));
    let mut temp = fresh_temp_beside(path).map_err(fail)?;
    temp.write_all(bytes).map_err(fail)?;
    commit_local(path, temp)
}

/// A temporary file to write `path` through, once what an earlier write of `path` killed
/// before its rename left beside it (its temporary files) is gone: the next write reclaims
/// them, so a killed run leaves nothing behind for long.
fn fresh_temp_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    idgraph_core::process::remove_temp_files_beside(path)?;
    idgraph_core::process::temp_file_beside(path)
}

/// Puts a fully written temporary file in place of `path`, durably.
fn commit_local(path: &Path, temp: tempfile::NamedTempFile) -> Result<(), Error> {
    let fail = |e: std::io::Error| StorageError(format!("cannot write {}: {e}", path.display()));
    // On disk before it replaces the old file: a crash leaves the old file or the new, whole.
    temp.as_file().sync_all().map_err(fail)?;
    temp.persist(path).map_err(|e| fail(e.error))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The rename itself is durable once the folder is synced.
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_join() {
        let s3: Location = "s3://bucket/a/b/"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"));
        assert_eq!(
            s3,
            Location::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            s3.join("datasets/x.csv").to_string(),
            "s3://bucket/a/b/datasets/x.csv"
        );
        let bare: Location = "s3://bucket"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"));
        assert_eq!(bare.join("k").to_string(), "s3://bucket/k");
        assert!("s3:///x".parse::<Location>().is_err());
        assert_eq!(
            "data".parse::<Location>(),
            Ok(Location::Local(PathBuf::from("data")))
        );
    }
}
