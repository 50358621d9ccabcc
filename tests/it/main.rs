//! Cross-crate and multi-node tests. Every test body takes a fresh store and runs on
//! each backend (`on_every_store!`).

mod fuzz_http;
mod fuzz_validation;
mod lifecycle;
mod nodes;
mod race;
mod schedules_from_code;
mod shutdown_load;
mod templates_from_code;
mod typed_queues;
