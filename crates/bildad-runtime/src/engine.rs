//! The engine: one pass = expire dead runs, then claim and start available entries.
//! (API skeleton: bodies are being written.)

use bildad_core::{JobRegistry, JobStore, NewEntry, NodeConfig, NodeRef, QueueEntry, RunId, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Successes and failures of one half of an engine pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Runs started (or expired) without error.
    pub ok_count: u64,
    /// Runs that could not be started (or expired).
    pub error_count: u64,
}

/// The report of one engine pass (SPEC §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineReport {
    /// Claimed and started on this node.
    pub start: Counts,
    /// Expired runs (of any node).
    pub expire: Counts,
}

/// The engine of one node. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn JobStore>,
    node: NodeRef,
}

impl Engine {
    /// The store this engine uses.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// This node.
    pub fn node(&self) -> &NodeRef {
        &self.node
    }

    /// One pass: expire, then claim up to the free slots and start.
    pub async fn run_once(&self) -> Result<EngineReport, StoreError> {
        todo!()
    }

    /// Enqueues one entry.
    pub async fn enqueue(&self, entry: NewEntry) -> Result<QueueEntry, StoreError> {
        self.store.enqueue(entry).await
    }

    /// Enqueues, then runs one engine pass.
    pub async fn enqueue_and_trigger(
        &self,
        entry: NewEntry,
    ) -> Result<(QueueEntry, EngineReport), StoreError> {
        todo!("{entry:?}")
    }

    /// Enqueues and starts this entry now on this node, ahead of priority.
    pub async fn enqueue_and_run(
        &self,
        entry: NewEntry,
    ) -> Result<(QueueEntry, Option<RunId>), StoreError> {
        todo!("{entry:?}")
    }
}

/// A running node: engine, killer, optional ticker. Cheap to clone.
#[derive(Clone)]
pub struct NodeRuntime {
    engine: Engine,
}

impl NodeRuntime {
    /// Registers the node (first heartbeat), starts the killer and, when
    /// `config.engine_interval` is set, the ticker.
    pub async fn start(
        store: Arc<dyn JobStore>,
        registry: JobRegistry,
        config: NodeConfig,
    ) -> Result<Self, StoreError> {
        todo!("{store:p}{registry:?}{config:?}")
    }

    /// The node's engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stops claiming, waits up to `grace` for running jobs, aborts and finalizes the
    /// rest (`Shutdown`, retried by the normal rule), records the node's departure.
    pub async fn shutdown(&self, grace: Duration) {
        todo!("{grace:?}")
    }
}
