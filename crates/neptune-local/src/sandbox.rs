//! What the endpoint may read and whom it answers: local sources only inside the folders it
//! was given (and its own data folder), S3 sources only from the buckets it was given, and
//! requests only for a loopback or configured host name, never from a browser page.
//!
//! A local file is checked on the handle that is read, not on its name: the file is opened
//! once, and the path the open handle refers to must lie inside an allowed folder, so a link
//! swapped in between a check and the read cannot lead outside.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The folders, buckets and host names the endpoint is allowed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sandbox {
    /// Canonical paths.
    pub local_roots: Vec<PathBuf>,
    pub buckets: Vec<String>,
    /// Host names (without port) a request's `Host` may name besides loopback ones.
    pub hosts: Vec<String>,
}

impl Sandbox {
    /// A refused bucket's message, or `Ok`.
    pub fn check_bucket(&self, bucket: &str, source: &str) -> Result<(), String> {
        if self.buckets.iter().any(|b| b == bucket) {
            return Ok(());
        }
        let allowed = if self.buckets.is_empty() {
            "no S3 bucket".to_owned()
        } else {
            format!("only the S3 buckets {}", self.buckets.join(", "))
        };
        Err(format!(
            "Access denied to the source {source}: neptune-local may read {allowed}; start it \
             with --allow-bucket {bucket} to allow it"
        ))
    }

    fn outside(&self, source: &str) -> String {
        format!(
            "The source {source} is outside the folders neptune-local may read ({}); start it \
             with --allow-dir for another folder",
            self.local_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// Refuses a local file outside the allowed folders (after resolving `..` and links) or
    /// not a regular file (a device, a pipe): the check made when a load is asked for.
    pub fn check_local(&self, path: &Path, source: &str) -> Result<(), String> {
        self.open_local(path, source).map(drop)
    }

    /// Opens a local file and checks, on the open handle, that it is a regular file inside an
    /// allowed folder; the handle is what is then read.
    pub fn open_local(&self, path: &Path, source: &str) -> Result<std::fs::File, String> {
        let missing = || format!("The source {source} does not exist/not reachable");
        let file = std::fs::File::open(path).map_err(|_| missing())?;
        let meta = file.metadata().map_err(|_| missing())?;
        if !meta.is_file() {
            return Err(format!(
                "The source {source} names {}, which is not a regular file",
                path.display()
            ));
        }
        let real = handle_path(&file, path).ok_or_else(missing)?;
        if !self.local_roots.iter().any(|root| real.starts_with(root)) {
            return Err(self.outside(source));
        }
        Ok(file)
    }

    /// Reads a local file as [`Sandbox::open_local`] allows it.
    pub fn read_local(&self, path: &Path, source: &str) -> Result<Vec<u8>, String> {
        let mut file = self.open_local(path, source)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(bytes)
    }

    /// Why a request's headers are refused, or `Ok`: a browser's `Origin` (a web page must not
    /// drive the endpoint), or a `Host` that is neither a loopback name, the listening
    /// address, nor an allowed name (DNS rebinding).
    pub fn check_request(
        &self,
        headers: &axum::http::HeaderMap,
        listening: SocketAddr,
    ) -> Result<(), String> {
        if headers.contains_key(axum::http::header::ORIGIN) {
            return Err(
                "Requests from a web page (with an Origin header) are refused by neptune-local"
                    .to_owned(),
            );
        }
        let Some(host) = headers.get(axum::http::header::HOST) else {
            return Ok(());
        };
        let host = host.to_str().unwrap_or_default();
        let name = host_name(host);
        let loopback = name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip == listening.ip());
        if loopback || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return Ok(());
        }
        Err(format!(
            "Host {host} is not this endpoint's (a loopback name, {}, or one given with \
             --allow-host)",
            listening.ip()
        ))
    }
}

/// The host of a `Host` header, without its port (`[::1]:8182` -> `[::1]`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// The canonical path of what an open handle refers to: on Linux the kernel's own answer
/// (`/proc/self/fd`); elsewhere the canonical path of the name, accepted only if it is the
/// same file (device and inode) as the handle.
fn handle_path(file: &std::fs::File, path: &Path) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            return Some(real);
        }
    }
    let real = path.canonicalize().ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (file.metadata().ok()?, std::fs::metadata(&real).ok()?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return None;
        }
    }
    Some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_ports() {
        assert_eq!(host_name("127.0.0.1:8182"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8182"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
    }

    #[test]
    fn a_link_inside_an_allowed_folder_to_a_file_outside_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (inside, outside) = (dir.path().join("in"), dir.path().join("out"));
        for d in [&inside, &outside] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(outside.join("secret.csv"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(inside.join("ok.csv"), "y").unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.join("secret.csv"), inside.join("link.csv"))
            .unwrap_or_else(|e| panic!("{e}"));
        let sandbox = Sandbox {
            local_roots: vec![inside.canonicalize().unwrap_or_else(|e| panic!("{e}"))],
            ..Sandbox::default()
        };
        assert_eq!(
            sandbox.read_local(&inside.join("ok.csv"), "s"),
            Ok(b"y".to_vec())
        );
        let refused = sandbox.read_local(&inside.join("link.csv"), "s");
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("outside")),
            "{refused:?}"
        );
        assert!(
            sandbox
                .read_local(&outside.join("secret.csv"), "s")
                .is_err()
        );
    }
}
