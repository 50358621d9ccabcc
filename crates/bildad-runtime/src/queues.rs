//! A node's side of queues (SPEC §8): which queues it serves and its local caps. The
//! claim carries both; the cluster-wide settings (pause, global and rate limits) are the
//! store's to enforce.

use bildad_core::{ClaimedRun, NodeConfig, RunId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// The queues a node serves, its local caps, and its runs of capped queues.
#[derive(Debug, Default)]
pub(crate) struct LocalQueues {
    served: Option<Vec<String>>,
    caps: BTreeMap<String, u32>,
    /// The runs this node started of capped queues, until they no longer run here.
    started: Mutex<HashMap<RunId, String>>,
}

impl LocalQueues {
    /// The node's queue selection and caps from its configuration.
    pub(crate) fn new(config: &NodeConfig) -> Self {
        Self {
            served: config.queues.clone(),
            caps: config.queue_limits.clone(),
            started: Mutex::default(),
        }
    }

    /// The claim's `queues` and `queue_caps`: each cap less this node's runs of that
    /// queue still running (`running`: the executor's running runs).
    pub(crate) fn claim_fields(
        &self,
        running: &[RunId],
    ) -> (Option<Vec<String>>, BTreeMap<String, u32>) {
        if self.caps.is_empty() {
            return (self.served.clone(), BTreeMap::new());
        }
        let running: HashSet<RunId> = running.iter().copied().collect();
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.retain(|id, _| running.contains(id));
        let mut caps = self.caps.clone();
        for queue in started.values() {
            if let Some(n) = caps.get_mut(queue) {
                *n = n.saturating_sub(1);
            }
        }
        (self.served.clone(), caps)
    }

    /// Records the claimed runs of capped queues.
    pub(crate) fn claimed(&self, runs: &[ClaimedRun]) {
        if self.caps.is_empty() {
            return;
        }
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        for c in runs.iter().filter(|c| self.caps.contains_key(&c.run.queue)) {
            started.insert(c.run.id, c.run.queue.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_counts_the_runs_still_running() {
        let config = NodeConfig {
            queues: Some(vec!["a".into()]),
            queue_limits: [("a".to_owned(), 2)].into(),
            ..NodeConfig::default()
        };
        let local = LocalQueues::new(&config);
        local
            .started
            .lock()
            .unwrap()
            .extend([(1, "a".to_owned()), (2, "a".to_owned())]);
        let (served, caps) = local.claim_fields(&[1, 2]);
        assert_eq!(served, Some(vec!["a".to_owned()]));
        assert_eq!(caps["a"], 0);
        let (_, caps) = local.claim_fields(&[2]);
        assert_eq!(caps["a"], 1, "run 1 ended");
    }
}
