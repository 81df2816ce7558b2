//! The etcd v3 backend: every operation is one etcd request (a compare-and-swap transaction for guarded
//! writes), so the semantics are etcd's own. Several k8rs servers may share one etcd cluster.
//!
//! The compacted revision is kept in etcd under `compact_rev_key` (as kube-apiserver does), so that every
//! server sharing the cluster knows it and two compactors never undo each other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use crate::{
    check_value_size, prefix_end, Event, EventKind, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store,
    StoreError, WatchMessage, Watcher, DEFAULT_MAX_VALUE_BYTES,
};

/// The key that records the compacted revision (kube-apiserver's name for it).
pub const COMPACT_REVISION_KEY: &str = "compact_rev_key";
/// Large lists (10,000 objects and more) exceed gRPC's default 4 MiB message limit.
const MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;
/// Transient failures of reads are retried this many times, with doubling pauses.
const READ_RETRIES: u32 = 4;

#[derive(Clone, Debug)]
pub struct EtcdOptions {
    pub max_value_bytes: usize,
    /// Messages a watcher may have queued before it is ended as too slow.
    pub watch_capacity: usize,
    /// How long `connect` keeps trying before it reports the cluster unreachable.
    pub connect_timeout: Duration,
    /// Deadline of each request.
    pub request_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            watch_capacity: 1000,
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(15),
        }
    }
}

pub struct EtcdStore {
    client: Client,
    kv: KvClient,
    endpoints: String,
    options: EtcdOptions,
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (`http://host:2379`, or `host:2379`), retrying with backoff
    /// until `options.connect_timeout`, and checks that it answers.
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<Self> {
        let joined = endpoints.join(",");
        let unavailable = |reason: String| StoreError::Unavailable { endpoints: joined.clone(), reason };
        if endpoints.is_empty() {
            return Err(unavailable("no endpoints given".into()));
        }
        let connect_options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2).min(options.connect_timeout))
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let mut pause = Duration::from_millis(100);
        loop {
            let attempt = async {
                let mut client = Client::connect(endpoints, Some(connect_options.clone())).await?;
                client.status().await?;
                Ok::<_, etcd_client::Error>(client)
            };
            let last_error = match tokio::time::timeout(options.request_timeout, attempt).await {
                Ok(Ok(client)) => {
                    let kv = client
                        .kv_client()
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES);
                    return Ok(EtcdStore { client, kv, endpoints: joined, options });
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", options.request_timeout),
            };
            if tokio::time::Instant::now() + pause > deadline {
                return Err(unavailable(format!("gave up after {:?}: {last_error}", options.connect_timeout)));
            }
            tracing::warn!(endpoints = %joined, error = %last_error, "etcd not reachable yet, retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    fn error(&self, error: etcd_client::Error) -> StoreError {
        map_error(&self.endpoints, error)
    }

    /// Runs a read, retrying transient failures (etcd leader changes, a member restarting).
    async fn read<T, F, Fut>(&self, mut read: F) -> Result<T>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let mut pause = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match read(self.kv.clone()).await.map_err(|e| self.error(e)) {
                Err(e) if e.is_transient() && attempt < READ_RETRIES => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "etcd read failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                result => return result,
            }
        }
    }

    /// Turns etcd's revision errors into ones that carry the revisions involved.
    async fn revision_error(&self, error: StoreError, requested: Revision) -> StoreError {
        match error {
            StoreError::Compacted { .. } => {
                StoreError::Compacted { requested, compacted: self.compacted_revision().await.unwrap_or_default() }
            }
            StoreError::FutureRevision { .. } => {
                StoreError::FutureRevision { requested, current: self.current_revision().await.unwrap_or_default() }
            }
            other => other,
        }
    }

    /// The current value of `key`, from a transaction's else-branch `get`.
    fn current_from(responses: Vec<TxnOpResponse>) -> Option<KeyValue> {
        responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next().map(convert_kv),
            _ => None,
        })
    }
}

fn map_error(endpoints: &str, error: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                StoreError::Compacted { requested: 0, compacted: 0 }
            } else if message.contains("required revision is a future revision") {
                StoreError::FutureRevision { requested: 0, current: 0 }
            } else if matches!(status.code() as i32, GRPC_UNAVAILABLE | GRPC_DEADLINE_EXCEEDED | GRPC_ABORTED)
                // What the client reports when the connection itself failed.
                || message == "transport error"
            {
                StoreError::Unavailable { endpoints: endpoints.to_string(), reason: message.to_string() }
            } else {
                StoreError::Backend(format!("etcd: {message}"))
            }
        }
        E::TransportError(e) => StoreError::Unavailable { endpoints: endpoints.to_string(), reason: e.to_string() },
        E::IoError(e) => StoreError::Unavailable { endpoints: endpoints.to_string(), reason: e.to_string() },
        other => StoreError::Backend(format!("etcd: {other}")),
    }
}

/// gRPC status codes that mean "try again": no leader, a member restarting, a deadline missed.
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_ABORTED: i32 = 10;
const GRPC_UNAVAILABLE: i32 = 14;

fn convert_kv(kv: etcd_client::KeyValue) -> KeyValue {
    let create_revision = kv.create_revision();
    let mod_revision = kv.mod_revision();
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        value,
        create_revision,
        mod_revision,
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str, revision: Revision) -> Result<Option<KeyValue>> {
        let result = self
            .read(|mut kv| {
                let key = key.to_string();
                async move { kv.get(key, Some(GetOptions::new().with_revision(revision))).await }
            })
            .await;
        match result {
            Ok(mut response) => Ok(response.take_kvs().into_iter().next().map(convert_kv)),
            Err(e) => Err(self.revision_error(e, revision).await),
        }
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let mut start = request.prefix.as_bytes().to_vec();
        if let Some(after) = &request.start_after {
            let mut next = after.as_bytes().to_vec();
            next.push(0);
            start = start.max(next);
        }
        // etcd spells "from the first key" and "to the end of the keyspace" both as "\0".
        if start.is_empty() {
            start.push(0);
        }
        let end = prefix_end(&request.prefix).unwrap_or_else(|| vec![0]);
        let result = self
            .read(|mut kv| {
                let options = GetOptions::new()
                    .with_range(end.clone())
                    .with_limit(request.limit as i64)
                    .with_revision(request.revision);
                let start = start.clone();
                async move { kv.get(start, Some(options)).await }
            })
            .await;
        match result {
            Ok(mut response) => {
                let revision = if request.revision > 0 { request.revision } else { revision_of(response.header()) };
                Ok(RangeResponse {
                    more: response.more(),
                    count: response.count() as u64,
                    kvs: response.take_kvs().into_iter().map(convert_kv).collect(),
                    revision,
                })
            }
            Err(e) => Err(self.revision_error(e, request.revision).await),
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        check_value_size(key, &value, self.options.max_value_bytes)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let response = self.kv.clone().txn(txn).await.map_err(|e| self.error(e))?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists { key: key.to_string() });
        }
        Ok(revision_of(response.header()))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        check_value_size(key, &value, self.options.max_value_bytes)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self.kv.clone().txn(txn).await.map_err(|e| self.error(e))?;
        if response.succeeded() {
            return Ok(revision_of(response.header()));
        }
        match Self::current_from(response.op_responses()) {
            None => Err(StoreError::NotFound { key: key.to_string() }),
            Some(current) => {
                Err(StoreError::Conflict { key: key.to_string(), expected, current: Some(Box::new(current)) })
            }
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let delete = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let txn = match expected {
            Some(expected) => Txn::new()
                .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
                .and_then([delete])
                .or_else([TxnOp::get(key, None)]),
            None => Txn::new().and_then([delete]),
        };
        let response = self.kv.clone().txn(txn).await.map_err(|e| self.error(e))?;
        let revision = revision_of(response.header());
        let responses = response.op_responses();
        if !response.succeeded() {
            return match Self::current_from(responses) {
                None => Err(StoreError::NotFound { key: key.to_string() }),
                Some(current) => Err(StoreError::Conflict {
                    key: key.to_string(),
                    expected: expected.unwrap_or_default(),
                    current: Some(Box::new(current)),
                }),
            };
        }
        let prev = responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Delete(mut delete) => delete.take_prev_kvs().into_iter().next().map(convert_kv),
            _ => None,
        });
        match prev {
            Some(prev) => Ok((revision, prev)),
            None => Err(StoreError::NotFound { key: key.to_string() }),
        }
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<Watcher> {
        // etcd reports a compacted start only after it has accepted the watch; refuse it up front instead.
        if start_revision > 0 {
            let compacted = self.compacted_revision().await?;
            if start_revision <= compacted {
                return Err(StoreError::Compacted { requested: start_revision, compacted });
            }
        }
        let mut options = WatchOptions::new().with_prev_key();
        options = match prefix_end(prefix) {
            Some(end) => options.with_range(end),
            None => options.with_range(vec![0]),
        };
        if start_revision > 0 {
            options = options.with_start_revision(start_revision);
        }
        let mut stream = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .watch(prefix, Some(options))
            .await
            .map_err(|e| self.error(e))?;
        // The first answer says whether the watch was created, or refused because its history is gone.
        let created = stream.message().await.map_err(|e| self.error(e))?;
        match created {
            Some(response) if response.canceled() => {
                if response.compact_revision() > 0 {
                    return Err(StoreError::Compacted {
                        requested: start_revision,
                        compacted: response.compact_revision(),
                    });
                }
                return Err(StoreError::Backend(format!("etcd refused the watch: {}", response.cancel_reason())));
            }
            Some(_) => {}
            None => {
                return Err(StoreError::Unavailable {
                    endpoints: self.endpoints.clone(),
                    reason: "watch stream closed before it started".into(),
                })
            }
        }
        let (tx, rx) = mpsc::channel(self.options.watch_capacity.max(1));
        let end = Arc::new(Mutex::new(None));
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<()>();
        let (mut sender, mut responses) = stream.split();
        let task_end = end.clone();
        let endpoints = self.endpoints.clone();
        tokio::spawn(async move {
            let fail = |error: StoreError| *task_end.lock().unwrap() = Some(error);
            loop {
                tokio::select! {
                    request = progress_rx.recv() => match request {
                        Some(()) => { let _ = sender.request_progress().await; }
                        None => return, // the Watcher was dropped
                    },
                    response = responses.message() => {
                        let response = match response {
                            Ok(Some(response)) => response,
                            Ok(None) => {
                                return fail(StoreError::Unavailable {
                                    endpoints,
                                    reason: "watch stream closed".into(),
                                })
                            }
                            Err(e) => return fail(map_error(&endpoints, e)),
                        };
                        if response.canceled() {
                            return fail(if response.compact_revision() > 0 {
                                StoreError::Compacted {
                                    requested: start_revision,
                                    compacted: response.compact_revision(),
                                }
                            } else {
                                StoreError::Backend(format!("etcd ended the watch: {}", response.cancel_reason()))
                            });
                        }
                        let message = if response.events().is_empty() {
                            WatchMessage::Progress(revision_of(response.header()))
                        } else {
                            WatchMessage::Events(response.events().iter().filter_map(convert_event).collect())
                        };
                        match tx.try_send(message) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => return fail(StoreError::WatcherTooSlow),
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                }
            }
        });
        Ok(Watcher::new(
            rx,
            end,
            Box::new(move || {
                let _ = progress_tx.send(());
            }),
        ))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.kv.clone();
        let recorded =
            kv.get(COMPACT_REVISION_KEY, None).await.map_err(|e| self.error(e))?.take_kvs().into_iter().next();
        let (compacted, guard) = match &recorded {
            Some(record) => (parse_revision(record.value()), record.mod_revision()),
            None => (0, 0),
        };
        if revision <= compacted {
            return Err(StoreError::Compacted { requested: revision, compacted });
        }
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision { requested: revision, current });
        }
        // Claim the compaction first, so that of several servers only one compacts to any revision.
        let claim = Txn::new()
            .when([Compare::mod_revision(COMPACT_REVISION_KEY, CompareOp::Equal, guard)])
            .and_then([TxnOp::put(COMPACT_REVISION_KEY, revision.to_string(), None)]);
        if !kv.txn(claim).await.map_err(|e| self.error(e))?.succeeded() {
            return Err(StoreError::Compacted { requested: revision, compacted: self.compacted_revision().await? });
        }
        match kv.compact(revision, Some(CompactionOptions::new().with_physical())).await {
            Ok(_) => Ok(()),
            Err(e) => match self.error(e) {
                // etcd compacted this far already (by another client): the goal is reached.
                StoreError::Compacted { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let response = self
            .read(|mut kv| async move { kv.get(COMPACT_REVISION_KEY, Some(GetOptions::new().with_count_only())).await })
            .await?;
        Ok(revision_of(response.header()))
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let mut response = self.read(|mut kv| async move { kv.get(COMPACT_REVISION_KEY, None).await }).await?;
        Ok(response.take_kvs().first().map_or(0, |kv| parse_revision(kv.value())))
    }
}

fn parse_revision(value: &[u8]) -> Revision {
    std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn convert_event(event: &etcd_client::Event) -> Option<Event> {
    let kv = convert_kv(event.kv()?.clone());
    Some(Event {
        kind: match event.event_type() {
            EventType::Put => EventKind::Put,
            EventType::Delete => EventKind::Delete,
        },
        kv,
        prev: event.prev_kv().cloned().map(convert_kv),
    })
}
