//! The cases: one `pub async fn(Arc<dyn JobStore>)` per rule, each independent and
//! starting from an empty store. [`crate::for_each_case!`] lists them all.

mod claim;
mod enqueue;
mod finalize;
mod history;
mod killer;
mod not_started;
mod operator;
mod produced_text;
mod templates;

pub use claim::*;
pub use enqueue::*;
pub use finalize::*;
pub use history::*;
pub use killer::*;
pub use not_started::*;
pub use operator::*;
pub use produced_text::*;
pub use templates::*;
