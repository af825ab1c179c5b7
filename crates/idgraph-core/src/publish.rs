//! Publishing a folder of files as a whole, locally, and reclaiming what a publish killed
//! midway left: a staged folder is complete before it replaces the old one, and the old one is
//! moved aside (never deleted first), so a kill at any instant leaves the old batch, the new
//! one, or leftovers from which the next run restores one of them.
//!
//! Names (both engines, the Rust transform and the Spark job, use them):
//! - `.staging-BATCH-PID-*`, in the folder that holds the graph batches: a batch being written;
//! - `.replaced-NAME-PID`, beside the batch folder `NAME`: the previous generation, moved aside.

use std::io;
use std::path::{Path, PathBuf};

/// The name prefix of the staging folder of `batch` written by this process.
pub fn staging_prefix(batch: &str) -> String {
    format!(".staging-{batch}-{}-", std::process::id())
}

/// Puts the complete folder `staging` in place of `final_dir`: the old folder (if any) is
/// renamed aside, the staged one renamed in, then the old one removed. A kill between the two
/// renames leaves no `final_dir` but both generations whole; [`reclaim`] then puts the old one
/// back.
pub fn replace_dir(staging: &Path, final_dir: &Path) -> io::Result<()> {
    let parent = final_dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = final_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let old = parent.join(format!(".replaced-{name}-{}", std::process::id()));
    if final_dir.exists() {
        std::fs::rename(final_dir, &old)?;
    }
    crate::process::exit_point("publish", "between-renames");
    std::fs::rename(staging, final_dir)?;
    sync_dir(parent);
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What [`reclaim`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Batch folders put back from their `.replaced-*` copy (the publish that moved them aside
    /// died before the new one was in place).
    pub restored: Vec<PathBuf>,
    /// Leftover folders removed.
    pub removed: Vec<PathBuf>,
}

/// Whether the process `pid` may still be running (and so owns its leftovers). Without a
/// `/proc` to ask, every process is taken as running: nothing is reclaimed rather than a live
/// run's folder.
fn running(pid: u32) -> bool {
    pid == std::process::id() || !Path::new("/proc/self").exists() || {
        Path::new("/proc").join(pid.to_string()).exists()
    }
}

/// Reclaims the leftovers of killed publishes in `dirs` (the folders that hold batch folders
/// and staging folders): a `.replaced-NAME-PID` whose `NAME` is missing is renamed back to
/// `NAME`; one whose `NAME` exists is removed; a `.staging-*` folder of a process that is no
/// longer running is removed. Leftovers of running processes are left alone.
pub fn reclaim(dirs: &[PathBuf]) -> io::Result<Reclaimed> {
    let mut done = Reclaimed::default();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            if let Some(rest) = name.strip_prefix(".replaced-") {
                let Some((batch, pid)) = rest.rsplit_once('-') else {
                    continue;
                };
                let Ok(pid) = pid.parse::<u32>() else {
                    continue;
                };
                if pid == std::process::id() || running(pid) {
                    continue;
                }
                let batch_dir = dir.join(batch);
                if batch_dir.exists() {
                    std::fs::remove_dir_all(&path)?;
                    done.removed.push(path);
                } else {
                    std::fs::rename(&path, &batch_dir)?;
                    sync_dir(dir);
                    done.restored.push(batch_dir);
                }
            } else if let Some(rest) = name.strip_prefix(".staging-") {
                let mut parts = rest.rsplitn(3, '-');
                let (_, pid) = (parts.next(), parts.next());
                let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
                    continue;
                };
                if running(pid) {
                    continue;
                }
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
                done.removed.push(path);
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A pid no process has: above the kernel's limit.
    const DEAD: u32 = 4_194_304 + 7;

    #[test]
    fn a_publish_killed_between_its_renames_gets_the_old_batch_back() {
        let dir = tempdir();
        let graph = dir.path().join("graph");
        // What a kill between the renames leaves: the old batch aside, the new one staged.
        write(
            &graph.join(format!(".replaced-initial-{DEAD}/manifest.json")),
            "old",
        );
        write(
            &graph.join(format!(".staging-initial-{DEAD}-abc123/manifest.json")),
            "new",
        );
        let done = reclaim(std::slice::from_ref(&graph)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&graph.join("initial/manifest.json")), "old");
        assert_eq!(done.restored, [graph.join("initial")]);
        let left: Vec<_> = std::fs::read_dir(&graph)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.map(|e| e.file_name()).unwrap_or_default())
            .collect();
        assert_eq!(left, ["initial"]);
    }

    #[test]
    fn a_replaced_copy_beside_its_batch_is_removed_and_live_runs_are_left_alone() {
        let dir = tempdir();
        let graph = dir.path().join("graph");
        write(&graph.join("initial/manifest.json"), "new");
        write(
            &graph.join(format!(".replaced-initial-{DEAD}/manifest.json")),
            "old",
        );
        let mine = graph.join(format!("{}x1", staging_prefix("initial")));
        write(&mine.join("manifest.json"), "mine");
        reclaim(std::slice::from_ref(&graph)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&graph.join("initial/manifest.json")), "new");
        assert!(!graph.join(format!(".replaced-initial-{DEAD}")).exists());
        assert!(mine.exists(), "this process's staging folder was removed");
    }

    #[test]
    fn replace_dir_swaps_whole_folders() {
        let dir = tempdir();
        let (staging, target) = (dir.path().join(".staging-x-1-a"), dir.path().join("x"));
        write(&target.join("old.csv"), "old");
        write(&staging.join("new.csv"), "new");
        replace_dir(&staging, &target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&target.join("new.csv")), "new");
        assert!(!target.join("old.csv").exists());
        assert!(!staging.exists());
        assert_eq!(
            std::fs::read_dir(dir.path())
                .unwrap_or_else(|e| panic!("{e}"))
                .count(),
            1
        );
    }
}
