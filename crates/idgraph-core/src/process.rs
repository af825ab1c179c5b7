//! Small helpers every command of the toolkit shares.

use std::io;
use std::path::Path;

/// Test-only: `IDGRAPH_TEST_EXIT_AT=POINT` makes the process exit at once (code 86) at that
/// point, as a kill would (no destructor runs, locks stay behind), so tests can restart a run
/// from every point where a real one can die. `program` names who exits, on stderr.
pub fn exit_point(program: &str, point: &str) {
    exit_point_in(program, point, "");
}

/// [`exit_point`] for a point passed once per part of the work (`context` names the part, e.g.
/// `initial vertices`). With `IDGRAPH_TEST_EXIT_LOG=FILE` as well, the process exits at the
/// first pass of POINT whose context FILE does not list yet, and lists it there first: a test
/// that restarts the same command until it exits 0 has then killed it once at every part that
/// passes the point, whichever parts an earlier run already finished.
pub fn exit_point_in(program: &str, point: &str, context: &str) {
    if !std::env::var("IDGRAPH_TEST_EXIT_AT").is_ok_and(|p| p == point) {
        return;
    }
    if let Some(log) = std::env::var_os("IDGRAPH_TEST_EXIT_LOG") {
        let line = format!("{point} {context}");
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        if seen.lines().any(|l| l == line) {
            return;
        }
        let logged = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| {
                io::Write::write_all(&mut f, format!("{line}\n").as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = logged {
            eprintln!("{program}: cannot write the exit log: {e}");
            return;
        }
    }
    eprintln!("{program}: exiting at {point} {context} (IDGRAPH_TEST_EXIT_AT)");
    std::process::exit(86);
}

/// The peak resident set size of this process, in bytes (Linux; `None` elsewhere).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A temporary file in the folder of `path` (created if missing), named after it and hidden,
/// readable like any file the user creates (the umask applies). Persisting it renames it over
/// `path` in one step; dropping it removes it. This is how every output file is written, so
/// that no partial file ever stands where a complete one is expected.
/// Removes the temporary files that writes of `path` killed before their rename left beside
/// it (named as [`temp_file_beside`] names them); returns how many.
pub fn remove_temp_files_beside(path: &Path) -> io::Result<usize> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(0);
    };
    let prefix = format!(".{name}.");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

pub fn temp_file_beside(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// A command-line parser's error as one line: its first paragraph (before usage and hints),
/// without its `error: ` prefix, folded onto one line.
pub fn one_line_error(text: &str) -> String {
    let first = text.split("\n\n").next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    first.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_fold_onto_one_line() {
        let clap = "error: the following required arguments were not provided:\n  --incremental\n\nUsage: x\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line_error(clap),
            "the following required arguments were not provided: --incremental"
        );
    }

    #[test]
    fn temp_files_are_hidden_beside_their_target_and_vanish_when_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let target = dir.path().join("sub/out.csv");
        let temp = temp_file_beside(&target).unwrap_or_else(|e| panic!("{e}"));
        let name = temp
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(name.starts_with(".out.csv.") && temp.path().parent() == target.parent());
        drop(temp);
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub"))
                .map(|d| d.count())
                .unwrap_or(99),
            0
        );
    }
}

/// A URL as messages may print it: without its userinfo (`redis://:PASSWORD@host:6379` ->
/// `redis://host:6379`), which can hold a secret.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `message` with every appearance of `url` (and of its userinfo's secret) replaced by the URL
/// without its userinfo: for errors of a library that may quote what it was given.
pub fn redact_url(message: &str, url: &str) -> String {
    let safe = without_userinfo(url);
    let mut out = message.replace(url, &safe);
    if let Some((_, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            for secret in userinfo.split(':').filter(|s| s.len() >= 4) {
                out = out.replace(secret, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn userinfo_is_never_printed() {
        assert_eq!(
            without_userinfo("redis://:s3cret@cache:6379/0"),
            "redis://cache:6379/0"
        );
        assert_eq!(without_userinfo("rediss://user:pw@h/x@y"), "rediss://h/x@y");
        assert_eq!(without_userinfo("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(without_userinfo("not a url"), "not a url");
        assert_eq!(
            redact_url(
                "cannot reach redis://:s3cret@cache:6379 (auth s3cret refused)",
                "redis://:s3cret@cache:6379"
            ),
            "cannot reach redis://cache:6379 (auth *** refused)"
        );
    }
}
