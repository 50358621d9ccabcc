//! The cases: one `pub async fn(Arc<dyn JobStore>)` per rule, each independent and
//! starting from an empty store. [`crate::for_each_case!`] lists them all.
//!
//! A case states one rule: its doc comment says the rule, its name says it too, and its
//! helpers (`crate::support`, `crate::fixtures`) read as the domain does. To add a file of
//! cases, add `mod <file>;` and `pub use <file>::*;` here, and its cases as a new group of
//! the list in [`crate::for_each_case!`]: every store then runs them.

mod claim;
mod delay;
mod depth;
mod enqueue;
mod finalize;
mod history;
mod killer;
mod listing;
mod not_started;
mod operator;
mod produced_text;
mod queues;
mod requeue;
mod schedules;
mod snooze;
mod templates;
mod trace_context;
mod unique;

pub use claim::*;
pub use delay::*;
pub use depth::*;
pub use enqueue::*;
pub use finalize::*;
pub use history::*;
pub use killer::*;
pub use listing::*;
pub use not_started::*;
pub use operator::*;
pub use produced_text::*;
pub use queues::*;
pub use requeue::*;
pub use schedules::*;
pub use snooze::*;
pub use templates::*;
pub use trace_context::*;
pub use unique::*;
