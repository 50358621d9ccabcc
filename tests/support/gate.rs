//! `Gate`: a test job (`t.gate`) that blocks until the test opens its gate, so a test
//! holds jobs running for exactly as long as it needs, instead of sleeping.

use crate::registry;
use bildad_core::{JobContext, JobRegistry, JobStore, NodeConfig};
use bildad_runtime::NodeRuntime;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// A job that blocks until the test opens its gate, and records whether it finished or
/// was dropped (aborted) before finishing.
#[derive(Clone)]
pub struct Gate {
    /// One permit lets one job through (`add_permits(n)`).
    pub open: Arc<Semaphore>,
    /// Jobs that reached the gate.
    pub started: Arc<AtomicU64>,
    /// Jobs that passed the gate and succeeded.
    pub finished: Arc<AtomicU64>,
    /// Jobs dropped (aborted) while waiting at the gate.
    pub aborted: Arc<AtomicU64>,
}

struct DropProbe {
    aborted: Arc<AtomicU64>,
    done: bool,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if !self.done {
            self.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self {
            open: Arc::new(Semaphore::new(0)),
            started: Arc::default(),
            finished: Arc::default(),
            aborted: Arc::default(),
        }
    }

    /// The test [`registry`] with `t.gate` added.
    pub fn registry(&self) -> JobRegistry {
        let g = self.clone();
        registry().with("t.gate", move |_ctx: JobContext| {
            let g = g.clone();
            async move {
                g.started.fetch_add(1, Ordering::SeqCst);
                let mut probe = DropProbe {
                    aborted: g.aborted.clone(),
                    done: false,
                };
                let permit = g.open.acquire().await.expect("gate");
                permit.forget();
                probe.done = true;
                g.finished.fetch_add(1, Ordering::SeqCst);
                Ok(Some(json!("finished")))
            }
        })
    }

    /// Starts a node on `store` with [`Gate::registry`].
    pub async fn node(&self, store: &Arc<dyn JobStore>, config: NodeConfig) -> NodeRuntime {
        NodeRuntime::start(store.clone(), self.registry(), config)
            .await
            .expect("start node")
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}
