//! `neptune-local`: serve the local bulk-loader endpoint, and look into its graph.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use neptune_local::{Config, GRAPH_FILE, GraphStore, Retention, SigV4Credentials, VertexView};

const DEFAULT_DATA_DIR: &str = "data/neptune-local";

#[derive(Debug, Parser)]
#[command(
    name = "neptune-local",
    version,
    about = "A local stand-in for Amazon Neptune's bulk loader, over an embedded SQLite graph",
    long_about = "A local stand-in for Amazon Neptune's bulk loader: POST/GET/DELETE /loader with \
                  Neptune's parameters, statuses and error codes, over an embedded SQLite graph \
                  store. Not Neptune: no Gremlin or openCypher queries, no cluster.",
    after_help = "Examples:\n  \
        neptune-local serve                              # http://127.0.0.1:8182, data in data/neptune-local\n  \
        curl -s -XPOST localhost:8182/loader -H 'Content-Type: application/json' \\\n       \
        -d '{\"source\":\"data/datasets/graph/initial/vertices\",\"format\":\"csv\",\"iamRoleArn\":\"arn:aws:iam::000000000000:role/local\",\"region\":\"us-east-1\"}'\n  \
        curl -s 'localhost:8182/propertygraph/stream?iteratorType=TRIM_HORIZON&limit=100'\n  \
        neptune-local stats\n  \
        neptune-local show jane.doe@example.com          # a vertex by id, or by a property value"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the loader API until the process is stopped.
    Serve {
        /// Folder of the graph and the load history.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8182")]
        addr: SocketAddr,
        /// Refuse requests not SigV4-signed (service neptune-db) with the access key in
        /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, as IAM database authentication does.
        #[arg(long)]
        require_sigv4: bool,
        /// A folder local sources may be read from (repeatable), besides the data folder; the
        /// working directory is not allowed unless given
        #[arg(long = "allow-dir", value_name = "DIR")]
        allow_dirs: Vec<PathBuf>,
        /// An S3 bucket sources may be read from (repeatable), with this server's credentials;
        /// none by default
        #[arg(long = "allow-bucket", value_name = "BUCKET")]
        allow_buckets: Vec<String>,
        /// A host name requests may address besides loopback names and --addr (repeatable)
        #[arg(long = "allow-host", value_name = "NAME")]
        allow_hosts: Vec<String>,
        /// Keep the loader's messages in the error log as Neptune words them (they quote the
        /// data); without it an entry has its code, file and record number only
        #[arg(long)]
        show_values: bool,
        /// Serve a non-loopback --addr without --require-sigv4 (anyone who reaches it can load
        /// data and read the graph)
        #[arg(long)]
        allow_unauthenticated: bool,
        /// Do not record changes: GET /propertygraph/stream answers
        /// UnsupportedOperationException, as on a cluster with neptune_streams = 0
        #[arg(long)]
        no_streams: bool,
        /// Days the change stream keeps its records (neptune_streams_expiry_days, 1 to 90)
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=90))]
        stream_expiry_days: u32,
        /// Keep at most about this many change records as well (whole commits are trimmed)
        #[arg(long, value_name = "N")]
        stream_max_records: Option<u64>,
    },
    /// Print vertices and edges per label.
    Stats {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a vertex, its properties and its neighbours. KEY is a vertex id or, failing that,
    /// any property value (an email, a cookie id, ...).
    Show {
        key: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Neighbours to print at most.
        #[arg(long, default_value_t = 50)]
        max_neighbours: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn open_existing(data_dir: &Path) -> anyhow::Result<GraphStore> {
    let path = data_dir.join(GRAPH_FILE);
    if !path.is_file() {
        bail!(
            "no graph at {}: start `neptune-local serve --data-dir {}` and load into it first",
            path.display(),
            data_dir.display()
        );
    }
    Ok(GraphStore::open(&path)?)
}

fn properties_line(properties: &[neptune_local::Property]) -> String {
    properties
        .iter()
        .map(|p| format!("{}={}", p.name, p.value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_vertex(view: &VertexView) {
    println!("{} [{}]", view.id, view.labels.join(";"));
    for p in &view.properties {
        println!("  {}: {} ({})", p.name, p.value, p.type_name);
    }
    for n in &view.neighbours {
        let arrow = if n.direction == "out" {
            format!("-[{}]->", n.edge_label)
        } else {
            format!("<-[{}]-", n.edge_label)
        };
        let edge_props = if n.edge_properties.is_empty() {
            String::new()
        } else {
            format!(" {{{}}}", properties_line(&n.edge_properties))
        };
        println!(
            "  {arrow} {} [{}]{edge_props} {}",
            n.vertex_id,
            n.vertex_labels.join(";"),
            properties_line(&n.vertex_properties)
        );
    }
    if view.more_neighbours > 0 {
        println!(
            "  ... and {} more (raise --max-neighbours)",
            view.more_neighbours
        );
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            data_dir,
            addr,
            require_sigv4,
            allow_dirs,
            allow_buckets,
            allow_hosts,
            show_values,
            allow_unauthenticated,
            no_streams,
            stream_expiry_days,
            stream_max_records,
        } => {
            let sigv4 = if require_sigv4 {
                let var = |name: &str| {
                    std::env::var(name)
                        .with_context(|| format!("--require-sigv4 needs {name} in the environment"))
                };
                Some(SigV4Credentials {
                    access_key_id: var("AWS_ACCESS_KEY_ID")?,
                    secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
                })
            } else {
                None
            };
            let server = neptune_local::Server::start(Config {
                sigv4,
                local_source_dirs: allow_dirs,
                allowed_buckets: allow_buckets,
                allowed_hosts: allow_hosts,
                show_values,
                allow_unauthenticated,
                streams: (!no_streams).then_some(Retention {
                    days: stream_expiry_days,
                    records: stream_max_records,
                }),
                ..Config::new(data_dir.clone(), addr)
            })?;
            eprintln!(
                "neptune-local: serving the loader API on {} (data in {}); stop with Ctrl-C",
                server.endpoint(),
                data_dir.display()
            );
            server.wait();
            Ok(())
        }
        Command::Stats { data_dir, json } => {
            let stats = open_existing(&data_dir)?.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("vertices: {}", stats.vertices);
                for (label, n) in &stats.vertex_labels {
                    println!("  {label}: {n}");
                }
                println!("edges: {}", stats.edges);
                for (label, n) in &stats.edge_labels {
                    println!("  {label}: {n}");
                }
            }
            Ok(())
        }
        Command::Show {
            key,
            data_dir,
            max_neighbours,
            json,
        } => {
            let views = open_existing(&data_dir)?.show(&key, max_neighbours)?;
            if views.is_empty() {
                bail!("no vertex has the id or a property value `{key}`");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for view in &views {
                    print_vertex(view);
                }
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("neptune-local: {e:#}");
            ExitCode::FAILURE
        }
    }
}
