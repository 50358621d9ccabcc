//! The cases: one `pub async fn(Arc<dyn JobStore>)` per rule, each independent and
//! starting from an empty store. [`crate::for_each_case!`] lists them all.

mod enqueue;
mod templates;

pub use enqueue::*;
pub use templates::*;
