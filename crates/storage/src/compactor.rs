//! Automatic compaction: keeps a window of history and forgets what is older, on any backend.
//!
//! Like kube-apiserver's compactor, it samples the current revision on a timer and compacts to the newest
//! sample taken at least `window` ago, so history younger than the window is always kept.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{DynStore, StoreError};

/// Stops the compactor when dropped.
pub struct CompactorHandle {
    task: JoinHandle<()>,
}

impl Drop for CompactorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts compacting `store` in the background, keeping `window` of history.
pub fn spawn_compactor(store: DynStore, window: Duration) -> CompactorHandle {
    let period = (window / 10).clamp(Duration::from_millis(50), Duration::from_secs(30));
    let task = tokio::spawn(async move {
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = Instant::now();
            match store.current_revision().await {
                Ok(revision) => samples.push_back((now, revision)),
                Err(error) => {
                    tracing::warn!(%error, "compactor cannot read the current revision");
                    continue;
                }
            }
            // The newest sample old enough to fall out of the window.
            let mut target = None;
            while let Some(&(taken, revision)) = samples.front() {
                if now.duration_since(taken) < window {
                    break;
                }
                target = Some(revision);
                samples.pop_front();
            }
            let Some(target) = target else { continue };
            match store.compacted_revision().await {
                Ok(compacted) if target <= compacted => continue,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "compactor cannot read the compacted revision");
                    continue;
                }
            }
            match store.compact(target).await {
                Ok(()) => tracing::debug!(revision = target, "compacted"),
                // Another compactor (another API server on the same etcd) got there first.
                Err(StoreError::Compacted { .. }) => {}
                Err(error) => tracing::warn!(%error, revision = target, "compaction failed"),
            }
        }
    });
    CompactorHandle { task }
}
