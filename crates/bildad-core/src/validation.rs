//! Context validation with `jsonschema`: schemas that never reach outside (SPEC §2.10),
//! compiled once per template version and cached.

use crate::NewEntry;
use crate::error::Violation;
use crate::model::{JobTemplate, Timestamp};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A compiled context schema.
pub type ContextValidator = Arc<jsonschema::Validator>;

/// Refuses every retrieval: a schema resolves locally or not at all.
struct NoRetrieval;

impl jsonschema::Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("schemas may not reference outside resources ({uri})").into())
    }
}

/// The most violations reported for one context; the rest are summarised.
const MAX_VIOLATIONS: usize = 50;

/// Compiles a schema, refusing any reference that leaves the schema document.
///
/// Violations point under `/context_schema`.
pub fn compile_schema(schema: &Value) -> Result<ContextValidator, Vec<Violation>> {
    let mut v = Vec::new();
    if !(schema.is_object() || schema.is_boolean()) {
        v.push(Violation::new(
            "/context_schema",
            "must be a JSON Schema (an object or a boolean)",
        ));
        return Err(v);
    }
    find_outside_refs(schema, String::from("/context_schema"), &mut v);
    if !v.is_empty() {
        return Err(v);
    }
    if let Err(e) = jsonschema::meta::validate(schema) {
        v.push(Violation::new(
            format!("/context_schema{}", e.instance_path().as_str()),
            format!("is not a valid JSON Schema: {e}"),
        ));
        return Err(v);
    }
    jsonschema::options()
        .with_retriever(NoRetrieval)
        .build(schema)
        .map(Arc::new)
        .map_err(|e| {
            vec![Violation::new(
                "/context_schema",
                format!("is not a usable JSON Schema: {e}"),
            )]
        })
}

/// The violations of a schema; empty when it is valid and local.
pub fn check_schema(schema: &Value) -> Vec<Violation> {
    compile_schema(schema).err().unwrap_or_default()
}

/// Every `$ref`-like keyword whose target is not inside this document.
fn find_outside_refs(value: &Value, pointer: String, out: &mut Vec<Violation>) {
    match value {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                if matches!(k.as_str(), "$ref" | "$dynamicRef" | "$recursiveRef") {
                    match child.as_str() {
                        Some(target) if target.starts_with('#') => {}
                        Some(target) => out.push(Violation::new(
                            here,
                            format!(
                                "refers to {target:?} outside this schema; only local references (\"#...\") are allowed"
                            ),
                        )),
                        None => {}
                    }
                } else {
                    find_outside_refs(child, here, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_outside_refs(child, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Validates `context` and returns every violation, pointing under `/context`.
pub fn validate_context(validator: &jsonschema::Validator, context: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut extra = 0usize;
    for e in validator.iter_errors(context) {
        if out.len() < MAX_VIOLATIONS {
            out.push(Violation::new(
                format!("/context{}", e.instance_path().as_str()),
                e.to_string(),
            ));
        } else {
            extra += 1;
        }
    }
    if extra > 0 {
        out.push(Violation::new(
            "/context",
            format!("and {extra} more violations"),
        ));
    }
    out
}

/// The version of a template's schema: its id and `updated_at`.
pub type SchemaVersion = (i64, Timestamp);

/// Compiled schemas by template version, so a schema is compiled once per version.
///
/// Old versions are dropped when a template changes.
#[derive(Default)]
pub struct SchemaCache {
    inner: RwLock<HashMap<i64, (Timestamp, ContextValidator)>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.inner.read().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("SchemaCache").field("schemas", &n).finish()
    }
}

impl SchemaCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The validator of `version`, compiling `schema` when it is not cached yet.
    ///
    /// A stored schema that no longer compiles yields its violations.
    pub fn get_or_compile(
        &self,
        version: SchemaVersion,
        schema: &Value,
    ) -> Result<ContextValidator, Vec<Violation>> {
        if let Some(v) = self.get(version) {
            return Ok(v);
        }
        let compiled = compile_schema(schema)?;
        if let Ok(mut map) = self.inner.write() {
            map.insert(version.0, (version.1, compiled.clone()));
        }
        Ok(compiled)
    }

    /// The cached validator of `version`, if any.
    pub fn get(&self, version: SchemaVersion) -> Option<ContextValidator> {
        let map = self.inner.read().ok()?;
        match map.get(&version.0) {
            Some((at, v)) if *at == version.1 => Some(v.clone()),
            _ => None,
        }
    }

    /// Validates `context` against the schema of `version`.
    pub fn validate(
        &self,
        version: SchemaVersion,
        schema: &Value,
        context: &Value,
    ) -> Result<(), Vec<Violation>> {
        let validator = self.get_or_compile(version, schema)?;
        let v = validate_context(&validator, context);
        if v.is_empty() { Ok(()) } else { Err(v) }
    }

    /// The rules of SPEC §2.1 for one entry, written once for every store: its fields,
    /// that `template` (the one its code names, if any) exists and is active, and that its
    /// context satisfies the template's schema. Violations are pushed to `v` with their
    /// pointers under `prefix` (`""` for a single entry, `/<index>` in a batch). Returns
    /// the template when there is one, so the caller can build the entry from it.
    pub fn check_entry<'t>(
        &self,
        template: Option<&'t JobTemplate>,
        new: &NewEntry,
        prefix: &str,
        v: &mut Vec<Violation>,
    ) -> Option<&'t JobTemplate> {
        new.check_fields(prefix, v);
        let Some(t) = template else {
            v.push(Violation::new(
                format!("{prefix}/template"),
                format!("no template has code {:?}", new.template),
            ));
            return None;
        };
        if !t.active {
            v.push(Violation::new(
                format!("{prefix}/template"),
                format!("template {:?} is inactive", t.code),
            ));
        }
        if let Err(errs) = self.validate((t.id, t.updated_at), &t.context_schema, &new.context) {
            v.extend(errs.into_iter().map(|mut e| {
                e.pointer = format!("{prefix}{}", e.pointer);
                e
            }));
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn remote_and_file_refs_are_rejected() {
        for target in [
            "https://example.com/s.json",
            "http://169.254.169.254/latest",
            "file:///etc/passwd",
            "other.json#/a",
        ] {
            let s = json!({"type": "object", "properties": {"a": {"$ref": target}}});
            let v = check_schema(&s);
            assert_eq!(v.len(), 1, "{target}: {v:?}");
            assert_eq!(v[0].pointer, "/context_schema/properties/a/$ref");
        }
    }

    #[test]
    fn local_refs_compile() {
        let s = json!({
            "$defs": {"email": {"type": "string", "minLength": 3}},
            "type": "object",
            "properties": {"to": {"$ref": "#/$defs/email"}},
            "required": ["to"]
        });
        assert!(check_schema(&s).is_empty());
        let v = compile_schema(&s).unwrap();
        assert!(validate_context(&v, &json!({"to": "a@b"})).is_empty());
        let errs = validate_context(&v, &json!({"to": 1}));
        assert_eq!(errs[0].pointer, "/context/to");
    }

    #[test]
    fn every_violation_is_reported_with_its_pointer() {
        let s = json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "required": ["a", "b", "c"]
        });
        let v = compile_schema(&s).unwrap();
        let errs = validate_context(&v, &json!({"a": "x"}));
        let pointers: Vec<_> = errs.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/context/a"), "{pointers:?}");
        assert_eq!(pointers.iter().filter(|p| **p == "/context").count(), 2);
    }

    #[test]
    fn invalid_schemas_are_rejected() {
        assert!(!check_schema(&json!({"type": "nonsense"})).is_empty());
        assert!(!check_schema(&json!({"minLength": -1})).is_empty());
        assert!(!check_schema(&json!("a string")).is_empty());
        assert!(check_schema(&json!(true)).is_empty());
    }

    #[test]
    fn cache_recompiles_a_new_version() {
        let cache = SchemaCache::new();
        let t0 = chrono::Utc::now();
        let t1 = t0 + chrono::Duration::seconds(1);
        let s0 = json!({"type": "object"});
        let s1 = json!({"type": "array"});
        assert!(cache.validate((1, t0), &s0, &json!({})).is_ok());
        assert!(cache.get((1, t0)).is_some());
        assert!(cache.validate((1, t1), &s1, &json!({})).is_err());
        assert!(cache.get((1, t0)).is_none());
    }
}
