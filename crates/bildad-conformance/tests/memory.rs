//! The conformance suite against `MemoryStore`, the reference implementation.

use bildad_conformance::Harness;
use bildad_core::MemoryStore;
use std::sync::Arc;

bildad_conformance::conformance_suite!(make);

async fn make() -> Option<Harness> {
    Some(Harness::new(Arc::new(MemoryStore::new()), ()))
}
