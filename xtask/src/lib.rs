//! Bildad's repository automation as a library, so tests elsewhere in the workspace can
//! run the installer (`install`) and read the released-migrations record (`tidy`).

pub mod install;
pub mod tidy;
