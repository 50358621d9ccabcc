//! Fixtures shared by every test crate: [`template()`], the one way a test creates a
//! template.

use bildad_core::{JobStore, JobTemplate, NewTemplate};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name no other fixture of this process uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A template to create: a fresh code and a fresh job type, a schema that accepts any
/// object, and the defaults of [`NewTemplate::new`]. Change what the test needs, then
/// [`TemplateFixture::create`] it:
///
/// ```ignore
/// let t = template().create(store).await;                       // fresh code and type
/// template().code("echo").job_type("t.echo").max_retries(3).create(store).await;
/// ```
pub fn template() -> TemplateFixture {
    let code = unique("tpl");
    TemplateFixture(NewTemplate::new(
        code.clone(),
        format!("Template {code}"),
        unique("type"),
        json!({"type": "object"}),
    ))
}

/// A template being described by a test; see [`template()`].
#[derive(Debug, Clone)]
pub struct TemplateFixture(NewTemplate);

impl TemplateFixture {
    /// Sets the code (and the name, to the same text).
    pub fn code(mut self, code: &str) -> Self {
        self.0.code = code.to_string();
        self.0.name = code.to_string();
        self
    }

    /// Sets the job type.
    pub fn job_type(mut self, job_type: &str) -> Self {
        self.0.job_type = job_type.to_string();
        self
    }

    /// Sets the context schema.
    pub fn schema(mut self, schema: Value) -> Self {
        self.0.context_schema = schema;
        self
    }

    /// Sets `default_max_retries`.
    pub fn max_retries(mut self, max_retries: i32) -> Self {
        self.0.default_max_retries = max_retries;
        self
    }

    /// Sets `default_timeout_seconds`.
    pub fn timeout_seconds(mut self, seconds: i32) -> Self {
        self.0.default_timeout_seconds = seconds;
        self
    }

    /// The template as input, for a test that changes more fields or calls
    /// `create_template` itself.
    pub fn new_template(self) -> NewTemplate {
        self.0
    }

    /// Creates the template, which must succeed, and returns it as stored.
    ///
    /// # Panics
    /// When the store refuses it, naming the code and the error.
    pub async fn create(self, store: &dyn JobStore) -> JobTemplate {
        let code = self.0.code.clone();
        match store.create_template(self.0).await {
            Ok(t) => {
                assert_eq!(t.code, code, "create_template echoes the code");
                t
            }
            Err(e) => panic!("create_template {code} failed: {e:?}"),
        }
    }
}
