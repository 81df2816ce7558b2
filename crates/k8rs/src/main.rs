//! The k8rs binary: command-line parsing and wiring of the library crates, nothing else.

mod agent;
mod images;
mod local_cluster;
mod server;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use storage::{Datastore, RangeRequest};

/// jemalloc: per-thread caches and arenas that grow in large steps. With glibc's, the API server's workers and its
/// SQLite writer either contended for one arena's lock or grew their own arenas page by page (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "k8rs", version, about = "A small Kubernetes in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the API server over the datastore (and, unless --disable-agent, a node).
    Server(server::ServerArgs),
    /// Join a cluster as a node and run its pods.
    Agent(agent::AgentArgs),
    /// Manage the node's images.
    Images {
        #[command(subcommand)]
        command: images::ImagesCommand,
    },
    /// A whole cluster on this machine, each node in a network namespace of its own.
    LocalCluster {
        #[command(subcommand)]
        command: local_cluster::LocalClusterCommand,
    },
    /// Supervises one container (started by the kubelet; not for direct use).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Inspect the cluster datastore.
    Datastore {
        #[command(subcommand)]
        command: DatastoreCommand,
    },
}

#[derive(Subcommand)]
enum DatastoreCommand {
    /// Show the datastore's revisions, key count and (for SQLite) size on disk.
    Status(DatastoreArgs),
}

#[derive(Args)]
struct DatastoreArgs {
    /// The server's data directory; the SQLite datastore is DIR/server/db/state.db.
    #[arg(long, env = "K8RS_DATA_DIR", default_value = "/var/lib/k8rs")]
    data_dir: PathBuf,
    /// Empty for SQLite in the data directory, sqlite:///FILE, or http://HOST:2379[,http://HOST2:2379…] for etcd.
    #[arg(long, env = "K8RS_DATASTORE_ENDPOINT", default_value = "")]
    datastore_endpoint: String,
}

impl DatastoreArgs {
    fn datastore(&self) -> anyhow::Result<Datastore> {
        let default = self.data_dir.join("server/db/state.db");
        Datastore::parse(&self.datastore_endpoint, &default).map_err(anyhow::Error::msg)
    }
}

fn main() -> anyhow::Result<()> {
    // Executed by a container runtime as a CNI plugin: the CNI protocol, not our command line.
    if std::env::var_os("CNI_COMMAND").is_some() && std::env::args_os().len() == 1 {
        std::process::exit(network::plugin_main());
    }
    // The shim must not start threads or an async runtime before it forks.
    if std::env::args_os().nth(1).is_some_and(|a| a == "shim") {
        std::process::exit(runtime::container::shim_main(std::env::args_os().skip(2).collect()));
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Both TLS providers may be linked in; pick ring once, before any TLS configuration is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server::run(args)),
        Command::Agent(args) => runtime.block_on(agent::run(args)),
        Command::Images { command } => runtime.block_on(images::run(command)),
        Command::LocalCluster { command } => runtime.block_on(local_cluster::run(command)),
        Command::Shim { .. } => unreachable!("handled before parsing"),
        Command::Datastore { command: DatastoreCommand::Status(args) } => runtime.block_on(datastore_status(&args)),
    }
}

async fn datastore_status(args: &DatastoreArgs) -> anyhow::Result<()> {
    let datastore = args.datastore()?;
    if let Datastore::Sqlite(path) = &datastore {
        // Opening would create a new, empty store: a status query must not.
        anyhow::ensure!(path.exists(), "no datastore at {}", path.display());
    }
    let store = datastore.open().await?;
    let keys = store.range(RangeRequest { limit: 1, ..Default::default() }).await?;
    match &datastore {
        Datastore::Sqlite(path) => println!("backend:    sqlite {}", path.display()),
        Datastore::Etcd(endpoints) => println!("backend:    etcd {}", endpoints.join(",")),
    }
    println!("revision:   {}", store.current_revision().await?);
    println!("compacted:  {}", store.compacted_revision().await?);
    println!("keys:       {}", keys.count);
    if let Datastore::Sqlite(path) = &datastore {
        println!("disk bytes: {}", sqlite_files_size(path));
    }
    Ok(())
}

/// The database file with its WAL and shared-memory files.
fn sqlite_files_size(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            std::fs::metadata(file).map_or(0, |m| m.len())
        })
        .sum()
}
