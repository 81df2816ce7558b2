//! `k8rs server`: wires the datastore, the certificates and the API server together.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use apiserver::{pki, ApiServer, Config, Pki, TokenFile};
use clap::Args;
use storage::Datastore;

#[derive(Args)]
pub struct ServerArgs {
    /// Holds the database, the certificates, the join token and the admin kubeconfig.
    #[arg(long, env = "K8RS_DATA_DIR", default_value = "/var/lib/k8rs")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "K8RS_BIND_ADDRESS", default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, env = "K8RS_HTTPS_LISTEN_PORT", default_value_t = 6443)]
    https_listen_port: u16,
    /// Also write the admin kubeconfig here (it is always written to DATA_DIR/kubeconfig.yaml).
    #[arg(long, env = "K8RS_WRITE_KUBECONFIG")]
    write_kubeconfig: Option<PathBuf>,
    /// Empty for SQLite in the data directory, sqlite:///FILE, or http://HOST:2379[,…] for an etcd cluster.
    #[arg(long, env = "K8RS_DATASTORE_ENDPOINT", default_value = "")]
    datastore_endpoint: String,
    /// History kept for watches to resume from; older revisions are compacted (e.g. 5m, 90s).
    #[arg(long, env = "K8RS_COMPACTION_WINDOW", default_value = "5m", value_parser = parse_duration)]
    compaction_window: Duration,
    /// The range Service cluster IPs come from.
    #[arg(long, env = "K8RS_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// The range pod subnets come from.
    #[arg(long, env = "K8RS_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// The secret agents join with (default: generated once and kept in DATA_DIR/server/token).
    #[arg(long, env = "K8RS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Static bearer tokens, one `token,user,uid[,"group1,group2"]` per line.
    #[arg(long, env = "K8RS_TOKEN_AUTH_FILE")]
    token_auth_file: Option<PathBuf>,
    /// Run only the control plane: no node (kubelet) for this machine.
    #[arg(long, env = "K8RS_DISABLE_AGENT")]
    disable_agent: bool,
    /// Also serve on this inherited listening socket (how `k8rs local-cluster` reaches a server that lives in
    /// another network namespace from the host's loopback).
    #[arg(long, hide = true)]
    listen_fd: Option<i32>,
    /// How often the resource metrics API (`kubectl top`) scrapes every kubelet, as metrics-server's
    /// `--metric-resolution`.
    #[arg(long, env = "K8RS_METRICS_RESOLUTION", default_value = "15s", value_parser = parse_duration, hide = true)]
    metrics_resolution: Duration,
    #[command(flatten)]
    node: crate::agent::NodeOptions,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 90s, 5m or 1h"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{text:?} is not a duration such as 90s, 5m or 1h")),
    }
}

/// A new token has k3s's shape, `K10<sha256 of the CA certificate>::server:<secret>`, so that a joining agent can
/// check the CA it is handed before trusting it.
fn join_token(args: &ServerArgs, ca_pem: &str) -> anyhow::Result<String> {
    if let Some(token) = &args.token {
        return Ok(token.clone());
    }
    let path = args.data_dir.join("server/token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        _ => {
            let ca_hash: String = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes())
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let token = format!("K10{ca_hash}::server:{}", random_hex());
            pki::write_private(&path, &format!("{token}\n"))?;
            Ok(token)
        }
    }
}

fn random_hex() -> String {
    apiserver::random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let service_cidr =
        apiserver::Cidr::parse(&args.service_cidr).map_err(|e| anyhow::anyhow!("--service-cidr: {e}"))?;
    let service_ip = IpAddr::V4(service_cidr.nth(0));
    let cluster_cidr =
        controllers::ClusterCidr::parse(&args.cluster_cidr).map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let datastore = Datastore::parse(&args.datastore_endpoint, &args.data_dir.join("server/db/state.db"))
        .map_err(anyhow::Error::msg)?;
    let store = datastore.open().await?;
    let _compactor = storage::spawn_compactor(store.clone(), args.compaction_window);

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let mut names: Vec<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .map(String::from)
    .to_vec();
    if !hostname.is_empty() {
        names.push(hostname);
    }
    let mut ips = pki::local_addresses();
    ips.push(service_ip);
    if !args.bind_address.is_unspecified() {
        ips.push(args.bind_address);
    }
    let pki = Pki::load_or_create(&args.data_dir.join("server/tls"), &names, &ips)?;
    let pki_ca = pki.ca.cert_pem.clone();

    let mut tokens = match &args.token_auth_file {
        Some(path) => TokenFile::load(path).map_err(anyhow::Error::msg)?,
        None => TokenFile::default(),
    };
    // The join token authenticates nodes; until node credentials exist it is good for the node group only.
    tokens.insert(
        join_token(&args, &pki.ca.cert_pem)?,
        apiserver::Identity {
            user: "system:node-bootstrap".into(),
            groups: vec!["system:bootstrappers".into()],
            ..Default::default()
        },
    );

    let listen = SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let client_host =
        if args.bind_address.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { args.bind_address };
    let server_url = format!("https://{}", SocketAddr::new(client_host, local.port()));
    let kubeconfig = pki::kubeconfig(&server_url, &pki.ca, &pki.admin);
    pki::write_private(&args.data_dir.join("kubeconfig.yaml"), &kubeconfig)?;
    if let Some(path) = &args.write_kubeconfig {
        pki::write_private(path, &kubeconfig)?;
    }
    let controllers_kubeconfig = pki::kubeconfig(&server_url, &pki.ca, &pki.controllers);
    let config = Config {
        store,
        pki,
        tokens,
        advertise_address: SocketAddr::new(client_host, local.port()).to_string(),
        service_cidr,
        metrics_resolution: args.metrics_resolution,
    };
    let server = ApiServer::start(listener, config).await?;
    if let Some(fd) = args.listen_fd {
        server.serve(inherited_listener(fd)?);
    }
    let client = controller_client(&controllers_kubeconfig).await?;
    tokio::spawn(controllers::run(client, cluster_cidr, pki_ca.clone()));
    if !args.disable_agent {
        let (token, node, data_dir, cidr) =
            (join_token(&args, &pki_ca)?, args.node.clone(), args.data_dir.clone(), args.cluster_cidr.clone());
        let labels = vec![
            ("node-role.kubernetes.io/control-plane".to_string(), "true".to_string()),
            ("node-role.kubernetes.io/master".to_string(), "true".to_string()),
        ];
        let server_url = server_url.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::agent::run_node(&server_url, &token, &data_dir, &cidr, &node, labels).await {
                eprintln!("k8rs server: the node agent stopped: {error:#}");
                std::process::exit(1);
            }
        });
    }
    tracing::info!(address = %server.address, kubeconfig = %args.data_dir.join("kubeconfig.yaml").display(), "k8rs server is serving");
    eprintln!(
        "k8rs server listening on {} (kubeconfig: {})",
        server.address,
        args.data_dir.join("kubeconfig.yaml").display()
    );
    shutdown_signal().await;
    Ok(())
}

fn inherited_listener(fd: i32) -> anyhow::Result<tokio::net::TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: the fd was opened for us by our parent and is used only here.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true).with_context(|| format!("--listen-fd {fd} is not a listening socket"))?;
    Ok(tokio::net::TcpListener::from_std(listener)?)
}

/// A client of this server with the controllers' own certificate.
async fn controller_client(kubeconfig: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).context("the controllers' kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .context("the controllers' client configuration")?;
    kube::Client::try_from(config).context("the controllers' client")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
