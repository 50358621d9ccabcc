//! The conformance suite against `MemoryStore`, the reference implementation, and
//! against `FaultStore` wrapping it with no fault set (every call delegated unchanged).

use bildad_conformance::{FaultStore, Harness};
use bildad_core::MemoryStore;
use std::sync::Arc;

bildad_conformance::conformance_suite!(make);

async fn make() -> Option<Harness> {
    Some(Harness::new(Arc::new(MemoryStore::new()), ()))
}

mod through_fault_store {
    bildad_conformance::conformance_suite!(super::make_wrapped);
}

async fn make_wrapped() -> Option<Harness> {
    Some(Harness::new(
        FaultStore::new(Arc::new(MemoryStore::new())),
        (),
    ))
}
