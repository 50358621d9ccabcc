//! Property tests of context validation and template schemas
//! (`bildad_core::validation`): random schema JSON never panics; a compiled schema
//! validates random contexts without panicking; a `$ref` that leaves the document is
//! always rejected; and no schema, whatever it says, makes the validator open a
//! connection (a listener counts them: SPEC §2.10).
//!
//! `BILDAD_FUZZ_CASES` sets the number of cases per property (default 3,000).

use bildad_core::validation::{compile_schema, validate_context};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn cases() -> u32 {
    std::env::var("BILDAD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Keys of JSON Schema, so that random objects look like schemas often enough to compile.
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "items",
    "prefixItems",
    "required",
    "additionalProperties",
    "patternProperties",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "$defs",
    "definitions",
    "$ref",
    "$id",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$schema",
    "minItems",
    "uniqueItems",
    "contains",
    "dependentRequired",
    "propertyNames",
    "unevaluatedProperties",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(0.1)),
        Just(json!(-0.0)),
        prop::sample::select(vec![
            "object",
            "string",
            "integer",
            "number",
            "array",
            "boolean",
            "null",
            "#",
            "#/$defs/a",
            "#/properties/a",
            "#a",
            "#/definitions/x",
            "email",
            "date-time",
            "^(a+)+$",
            "[",
            "(?i)x",
            "\\p{L}+",
            "uri",
            "ipv4",
            "regex",
            "",
            "a",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

/// A random JSON value whose object keys are mostly schema keywords.
fn schemaish() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        8 => prop::sample::select(KEYWORDS).prop_map(str::to_owned),
        1 => "[a-z]{1,4}",
    ];
    scalar().prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn any_context() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,3}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn random_schemas_and_contexts_never_panic() {
    let compiled = AtomicUsize::new(0);
    runner()
        .run(&(schemaish(), any_context()), |(schema, context)| {
            if let Ok(v) = compile_schema(&schema) {
                compiled.fetch_add(1, Ordering::Relaxed);
                let violations = validate_context(&v, &context);
                prop_assert!(violations.len() <= 51, "violations are capped");
                for x in &violations {
                    prop_assert!(x.pointer.starts_with("/context"));
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "validation fuzz: {} cases, {} schemas compiled",
        cases(),
        compiled.load(Ordering::Relaxed)
    );
    assert!(
        compiled.load(Ordering::Relaxed) > 0,
        "no schema ever compiled"
    );
}

/// Where a reference may lead outside.
fn outside_target(port: u16) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("http://127.0.0.1:{port}/schema.json")),
        Just(format!("https://127.0.0.1:{port}/s#/x")),
        Just("file:///etc/passwd".to_owned()),
        Just("/etc/passwd".to_owned()),
        Just("other.json#/a".to_owned()),
        Just("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66".to_owned()),
        Just(String::new()),
        Just("//127.0.0.1/x".to_owned()),
        "[a-z]{1,8}:[a-z/.]{0,12}",
    ]
}

/// `schema` with `{keyword: target}` planted at a random place where a schema belongs
/// (whatever was there is replaced by an object on the way down).
fn plant(schema: Value, keyword: &str, target: String, path: &[u8]) -> Value {
    fn object(v: &mut Value) -> &mut Map<String, Value> {
        if !v.is_object() {
            *v = json!({});
        }
        v.as_object_mut().expect("object")
    }
    let mut root = schema;
    let mut at = &mut root;
    for step in path {
        let (key, inner) = match step % 5 {
            0 => ("properties", Some("p")),
            1 => ("items", None),
            2 => ("$defs", Some("d")),
            3 => ("allOf", None),
            _ => ("not", None),
        };
        let slot = object(at).entry(key).or_insert(Value::Null);
        at = match (key, inner) {
            ("allOf", _) => {
                if !slot.is_array() {
                    *slot = json!([]);
                }
                let items = slot.as_array_mut().expect("array");
                items.push(json!({}));
                items.last_mut().expect("pushed")
            }
            (_, Some(name)) => object(slot).entry(name).or_insert(json!({})),
            (_, None) => slot,
        };
    }
    object(at).insert(keyword.to_owned(), Value::String(target));
    root
}

#[test]
fn references_outside_the_document_are_always_rejected_and_never_fetched() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let watcher = std::thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            if listener.accept().is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });

    let keyword = prop::sample::select(vec!["$ref", "$dynamicRef", "$recursiveRef"]);
    let strategy = (
        schemaish(),
        keyword,
        outside_target(port),
        prop::collection::vec(any::<u8>(), 0..5),
    );
    runner()
        .run(&strategy, |(schema, keyword, target, path)| {
            let planted = plant(schema, keyword, target.clone(), &path);
            prop_assert!(
                compile_schema(&planted).is_err(),
                "accepted {keyword}: {target:?} in {planted}"
            );
            Ok(())
        })
        .unwrap();

    // Keywords that name other documents without being references: compiled or not,
    // nothing is fetched.
    let meta = (schemaish(), prop::sample::select(vec!["$schema", "$id"]));
    runner()
        .run(&meta, |(schema, keyword)| {
            let mut s = match schema {
                Value::Object(m) => Value::Object(m),
                _ => json!({}),
            };
            s[keyword] = json!(format!("http://127.0.0.1:{port}/meta.json"));
            s["properties"] = json!({"a": {"$ref": "#/$defs/missing"}});
            let _ = compile_schema(&s);
            Ok(())
        })
        .unwrap();

    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(
        connections.load(Ordering::Relaxed),
        0,
        "a schema made the validator connect to the network"
    );
}
