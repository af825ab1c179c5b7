//! Running the job with `spark-submit`: a laptop's `pip install pyspark`, EMR, any cluster.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{BatchJob, EngineError, JOB_SCRIPT, JOB_SCRIPT_NAME, JobReport, read_manifest};

/// How to call spark-submit.
#[derive(Debug, Clone)]
pub struct SparkPlan {
    /// The spark-submit program (a path, or a name on PATH).
    pub submit: String,
    /// `--master` (`local[*]`, `yarn`, `spark://host:7077`, ...).
    pub master: String,
    /// `--conf key=value` settings, passed through in order.
    pub conf: Vec<String>,
    /// The Python that runs the job, driver and workers (it needs `xxhash`); by default
    /// spark-submit's own choice (`python3` on PATH).
    pub python: Option<String>,
}

impl Default for SparkPlan {
    fn default() -> SparkPlan {
        SparkPlan {
            submit: "spark-submit".to_owned(),
            master: "local[*]".to_owned(),
            conf: Vec::new(),
            python: None,
        }
    }
}

/// Settings that keep a local Spark to this machine: the driver listens on loopback only and
/// serves no web UI (it would listen on every interface). The user's `--spark-conf` comes
/// after these and wins.
const LOCAL_CONF: [&str; 3] = [
    "spark.driver.host=127.0.0.1",
    "spark.driver.bindAddress=127.0.0.1",
    "spark.ui.enabled=false",
];

/// The spark-submit command line: the master, the loopback settings of a local master, the
/// user's `--conf` settings (after, so they win), the Python, then the script and its arguments.
fn command(plan: &SparkPlan, script: &str, arguments: Vec<(String, String)>) -> Command {
    let mut command = Command::new(&plan.submit);
    command.arg("--master").arg(&plan.master);
    if plan.master.starts_with("local") {
        for conf in LOCAL_CONF {
            command.arg("--conf").arg(conf);
        }
    }
    for conf in &plan.conf {
        command.arg("--conf").arg(conf);
    }
    if let Some(python) = &plan.python {
        command
            .env("PYSPARK_PYTHON", python)
            .env("PYSPARK_DRIVER_PYTHON", python);
    }
    command.arg(script);
    for (name, value) in arguments {
        command.arg(name).arg(value);
    }
    command
}

pub(crate) fn run(
    plan: &SparkPlan,
    job: &BatchJob,
    store: &idgraph_storage::Store,
) -> Result<JobReport, EngineError> {
    let started = Instant::now();
    let dir = tempfile::tempdir()
        .map_err(|e| EngineError::Submit(format!("cannot make a folder for the job: {e}")))?;
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text)
            .map_err(|e| EngineError::Submit(format!("cannot write {}: {e}", path.display())))?;
        Ok::<_, EngineError>(path.display().to_string())
    };
    let script = write(JOB_SCRIPT_NAME, JOB_SCRIPT)?;
    let sources = write("sources.toml", idgraph_core::SOURCES_TOML)?;
    let mapping = write("graph.toml", &job.mapping_toml)?;

    let mut command = command(plan, &script, job.arguments(&sources, &mapping));
    // Spark's own log goes to a file: its INFO lines would bury the job's one-line error.
    let log = tempfile::NamedTempFile::new()
        .map_err(|e| EngineError::Submit(format!("cannot make a log file: {e}")))?;
    // spark-submit sends the Python driver's stdout and stderr both to its stdout. One file
    // description for both, so that they append rather than overwrite each other.
    let log_file = log
        .reopen()
        .and_then(|f| Ok((f.try_clone()?, f)))
        .map_err(|e| EngineError::Submit(format!("cannot open the log file: {e}")))?;
    let status = command
        .stdout(Stdio::from(log_file.0))
        .stderr(Stdio::from(log_file.1))
        .status()
        .map_err(|e| {
            EngineError::Submit(format!(
                "cannot run `{}` ({e}); install Spark (`pip install pyspark==3.5.4`) or give --spark-submit PATH",
                plan.submit
            ))
        })?;
    if !status.success() {
        let mut text = String::new();
        let _ = log.reopen().and_then(|mut f| f.read_to_string(&mut text));
        return Err(EngineError::Submit(failure_message(&text, status.code())));
    }
    let manifest = read_manifest(store, job)?;
    Ok(JobReport {
        engine: "spark",
        batch: job.batch(),
        output: job.graph_dir().to_string(),
        run_id: None,
        job_action: None,
        state: "FINISHED".to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        dpu_seconds: None,
        manifest,
    })
}

/// The job's own `error: ...` line when it printed one; otherwise the last lines of Spark's
/// log that are not stack frames.
fn failure_message(log: &str, code: Option<i32>) -> String {
    let exit = code.map_or("a signal".to_owned(), |c| format!("exit code {c}"));
    if let Some(line) = log.lines().rev().find(|l| l.starts_with("error: ")) {
        return format!(
            "the Spark job failed ({exit}): {}",
            line.trim_start_matches("error: ")
        );
    }
    let tail: Vec<&str> = log
        .lines()
        .filter(|l| !l.trim_start().starts_with("at ") && !l.trim().is_empty())
        .collect();
    let start = tail.len().saturating_sub(12);
    format!(
        "spark-submit failed ({exit}); the end of its log:\n{}",
        tail[start..].join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(command: &Command) -> Vec<String> {
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn master_conf_and_python_are_passed_through_after_the_loopback_settings() {
        let plan = SparkPlan {
            submit: "/opt/spark/bin/spark-submit".to_owned(),
            master: "local[2]".to_owned(),
            conf: vec![
                "spark.ui.enabled=true".to_owned(),
                "spark.executor.memory=8g".to_owned(),
            ],
            python: Some("/venv/bin/python".to_owned()),
        };
        let arguments = vec![("--batch".to_owned(), "initial".to_owned())];
        let local = command(&plan, "job.py", arguments.clone());
        assert_eq!(local.get_program(), "/opt/spark/bin/spark-submit");
        let mut want = vec!["--master".to_owned(), "local[2]".to_owned()];
        for conf in LOCAL_CONF
            .iter()
            .copied()
            .chain(plan.conf.iter().map(String::as_str))
        {
            want.extend(["--conf".to_owned(), conf.to_owned()]);
        }
        want.extend(["job.py", "--batch", "initial"].map(str::to_owned));
        assert_eq!(args(&local), want);
        let envs: Vec<(String, String)> = local
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert!(envs.contains(&("PYSPARK_PYTHON".to_owned(), "/venv/bin/python".to_owned())));

        // A cluster's master gets no loopback settings: its driver must be reachable.
        let cluster = command(
            &SparkPlan {
                master: "yarn".to_owned(),
                ..plan
            },
            "job.py",
            arguments,
        );
        assert!(!args(&cluster).iter().any(|a| a.contains("127.0.0.1")));
        assert_eq!(
            args(&cluster)[..4],
            ["--master", "yarn", "--conf", "spark.ui.enabled=true"]
        );
    }

    #[test]
    fn the_jobs_own_error_line_is_the_message() {
        let log = "INFO a\nerror: datasets/x.csv: column 2 is `a` where the cookie schema has `b`\nINFO b\n";
        let m = failure_message(log, Some(2));
        assert!(
            m.contains("exit code 2") && m.contains("column 2 is `a`") && !m.contains("INFO"),
            "{m}"
        );
        let m = failure_message("Exception\n\tat org.x\nJava gateway died\n", Some(1));
        assert!(
            m.contains("Java gateway died") && !m.contains("org.x"),
            "{m}"
        );
    }
}
