//! The conformance suite every `JobStore` must pass.
