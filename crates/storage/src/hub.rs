//! Watch fan-out for the in-process backends (sqlite, memory), and the `Watcher` every backend hands out.
//!
//! Writers publish each committed batch under one short lock, in revision order, and never wait on a watcher:
//! a watcher whose bounded queue is full is ended with `WatcherTooSlow` and dropped, so a slow reader costs
//! writers nothing and holds at most `capacity` messages.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;

use crate::{Event, Result, Revision, StoreError, WatchMessage};

/// A stream of changes under one prefix. Ends with an error (`Compacted`, `WatcherTooSlow`, …) or, when the
/// store closes, with `None`.
pub struct Watcher {
    rx: mpsc::Receiver<WatchMessage>,
    end: Arc<Mutex<Option<StoreError>>>,
    request_progress: Box<dyn Fn() + Send + Sync>,
}

impl Watcher {
    pub(crate) fn new(
        rx: mpsc::Receiver<WatchMessage>,
        end: Arc<Mutex<Option<StoreError>>>,
        request_progress: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        Watcher { rx, end, request_progress }
    }

    /// The next batch of events or progress notification.
    pub async fn next(&mut self) -> Option<Result<WatchMessage>> {
        match self.rx.recv().await {
            Some(message) => Some(Ok(message)),
            None => self.end.lock().unwrap().take().map(Err),
        }
    }

    /// Asks for a `Progress` message: it arrives after every event up to the revision it names.
    pub fn request_progress(&self) {
        (self.request_progress)()
    }
}

/// Reads committed history for watchers that start in the past.
#[async_trait::async_trait]
pub(crate) trait History: Send + Sync + 'static {
    /// Events under `prefix` with revisions in `from..=to`, in order, at most `limit` of them (whole revisions).
    async fn events(&self, prefix: &str, from: Revision, to: Revision, limit: usize) -> Result<Vec<Event>>;
}

const REPLAY_PAGE: usize = 512;

pub(crate) struct Hub {
    state: Mutex<HubState>,
    capacity: usize,
}

struct HubState {
    /// Revision of the last published batch: every event up to it is in the history and has been fanned out.
    last_revision: Revision,
    next_id: u64,
    entries: Vec<Entry>,
}

struct Entry {
    id: u64,
    prefix: String,
    /// Events before this revision are not wanted (a watch that starts in the future).
    min_revision: Revision,
    tx: mpsc::Sender<WatchMessage>,
    end: Arc<Mutex<Option<StoreError>>>,
    /// While the watcher replays history, live events wait here (bounded by `capacity`).
    catching_up: Option<Vec<Event>>,
    progress_requested: bool,
}

impl Entry {
    fn fail(&self, error: StoreError) {
        *self.end.lock().unwrap() = Some(error);
    }
}

impl Hub {
    pub(crate) fn new(last_revision: Revision, capacity: usize) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(HubState { last_revision, next_id: 0, entries: Vec::new() }),
            capacity: capacity.max(1),
        })
    }

    /// Fans out one committed batch. Call in commit order, after the batch is durable and readable.
    pub(crate) fn publish(&self, events: &[Event]) {
        let Some(last) = events.last() else { return };
        let mut state = self.state.lock().unwrap();
        state.last_revision = last.revision();
        let capacity = self.capacity;
        state.entries.retain_mut(|entry| {
            if entry.tx.is_closed() {
                return false;
            }
            let matching =
                events.iter().filter(|e| e.revision() >= entry.min_revision && e.kv.key.starts_with(&entry.prefix));
            if let Some(buffer) = &mut entry.catching_up {
                buffer.extend(matching.cloned());
                if buffer.len() > capacity {
                    entry.fail(StoreError::WatcherTooSlow);
                    return false;
                }
                return true;
            }
            let matching: Vec<Event> = matching.cloned().collect();
            if matching.is_empty() {
                return true;
            }
            match entry.tx.try_send(WatchMessage::Events(matching)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    entry.fail(StoreError::WatcherTooSlow);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Starts a watcher. History in `start_revision..=last published` is replayed from `history` first.
    pub(crate) fn watch(
        self: &Arc<Self>,
        prefix: &str,
        start_revision: Revision,
        history: Arc<dyn History>,
    ) -> Watcher {
        let (tx, rx) = mpsc::channel(self.capacity);
        let end = Arc::new(Mutex::new(None));
        let mut state = self.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        let replay_to = state.last_revision;
        let replay = start_revision > 0 && start_revision <= replay_to;
        state.entries.push(Entry {
            id,
            prefix: prefix.to_string(),
            min_revision: start_revision,
            tx: tx.clone(),
            end: end.clone(),
            catching_up: replay.then(Vec::new),
            progress_requested: false,
        });
        drop(state);
        if replay {
            let hub = Arc::downgrade(self);
            let prefix = prefix.to_string();
            let end = end.clone();
            tokio::spawn(
                async move { replay_history(hub, id, prefix, start_revision, replay_to, history, tx, end).await },
            );
        }
        let hub = Arc::downgrade(self);
        Watcher::new(rx, end, Box::new(move || request_progress(&hub, id)))
    }
}

fn request_progress(hub: &Weak<Hub>, id: u64) {
    let Some(hub) = hub.upgrade() else { return };
    let mut state = hub.state.lock().unwrap();
    let revision = state.last_revision;
    if let Some(entry) = state.entries.iter_mut().find(|e| e.id == id) {
        if entry.catching_up.is_some() {
            entry.progress_requested = true;
        } else {
            // Best effort, as etcd's: a full queue already has messages that move the watcher forward.
            let _ = entry.tx.try_send(WatchMessage::Progress(revision));
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn replay_history(
    hub: Weak<Hub>,
    id: u64,
    prefix: String,
    mut from: Revision,
    to: Revision,
    history: Arc<dyn History>,
    tx: mpsc::Sender<WatchMessage>,
    end: Arc<Mutex<Option<StoreError>>>,
) {
    while from <= to {
        match history.events(&prefix, from, to, REPLAY_PAGE).await {
            Ok(events) if events.is_empty() => break,
            Ok(events) => {
                from = events.last().map_or(to, |e| e.revision()) + 1;
                if tx.send(WatchMessage::Events(events)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                *end.lock().unwrap() = Some(error);
                remove(&hub, id);
                return;
            }
        }
    }
    // Caught up: hand over to live delivery under the lock, so no event slips between the two.
    let Some(hub) = hub.upgrade() else { return };
    let mut state = hub.state.lock().unwrap();
    let last_revision = state.last_revision;
    let Some(position) = state.entries.iter().position(|e| e.id == id) else {
        return;
    };
    let entry = &mut state.entries[position];
    let buffered = entry.catching_up.take().unwrap_or_default();
    let mut ok = true;
    if !buffered.is_empty() {
        ok = entry.tx.try_send(WatchMessage::Events(buffered)).is_ok();
    }
    if ok && std::mem::take(&mut entry.progress_requested) {
        let _ = entry.tx.try_send(WatchMessage::Progress(last_revision));
    }
    if !ok {
        entry.fail(StoreError::WatcherTooSlow);
        state.entries.remove(position);
    }
}

fn remove(hub: &Weak<Hub>, id: u64) {
    if let Some(hub) = hub.upgrade() {
        hub.state.lock().unwrap().entries.retain(|e| e.id != id);
    }
}
