//! `openapi.yaml` stays true: every route the router knows is documented
//! (and nothing else), every `$ref` resolves, and every example marked
//! `x-status` gets that status from a real server serving the demo's
//! citizens (the examples name people of the demo snapshot, so that a
//! fuzzer reaches the lookups). The contract test of `.ci/run`
//! (Schemathesis) holds the server to the rest of the document.

use std::path::PathBuf;
use std::sync::OnceLock;

use dancu_data::{build_synthetic, generate_chunk, synth::CHUNK_SIZE};
use dancu_server::demo::{DEMO_CITIZENS, DEMO_SEED};
use serde_json::Value;

use crate::support::*;

/// A snapshot of the first chunk of the demo's population: the same
/// citizens as the first [`CHUNK_SIZE`] of `demo-1m.snap`.
fn demo_chunk_snapshot() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("dancu-openapi-it")
            .tempdir()
            .unwrap()
            .keep();
        let path = dir.join("demo-chunk.snap");
        build_synthetic(&path, CHUNK_SIZE, DEMO_SEED, false).unwrap();
        path
    })
}

#[test]
fn a_small_population_starts_with_the_demos_citizens() {
    // Chunk 0 of a population depends on the seed alone, so the examples
    // taken from it exist in the 1 M demo (and in CI's 20 k snapshot).
    assert_eq!(
        generate_chunk(CHUNK_SIZE, DEMO_SEED, 0),
        generate_chunk(DEMO_CITIZENS, DEMO_SEED, 0)
    );
}

fn document() -> Value {
    serde_yaml::from_str(dancu_server::OPENAPI_YAML).expect("openapi.yaml is YAML")
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local refs only");
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("unresolved $ref {r}"))
        }
        None => v,
    }
}

fn walk_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    let r = child.as_str().unwrap();
                    assert!(
                        doc.pointer(r.trim_start_matches('#')).is_some(),
                        "unresolved $ref {r}"
                    );
                }
                walk_refs(doc, child);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| walk_refs(doc, i)),
        _ => {}
    }
}

#[test]
fn documents_exactly_the_routes_of_the_router() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed: Vec<(String, String)> = dancu_server::router::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    walk_refs(&doc, &doc);
    // Every operation documents its success and, when it needs a key, 401.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path}: no success response"
            );
            let public = op
                .get("security")
                .is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
            assert_eq!(
                !public,
                responses.contains_key("401"),
                "{method} {path}: 401 iff a key is needed"
            );
        }
    }
}

#[test]
fn examples_get_the_documented_status() {
    let doc = document();
    let server = TestServer::start(demo_chunk_snapshot(), |_| {});
    let mut c = server.client();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Path parameters' examples.
            for param in op["parameters"].as_array().into_iter().flatten() {
                let param = resolve(&doc, param);
                if param["in"] != "path" {
                    continue;
                }
                let name = param["name"].as_str().unwrap();
                for (label, ex) in param["examples"].as_object().into_iter().flatten() {
                    let Some(status) = ex["x-status"].as_u64() else {
                        continue;
                    };
                    let url = path.replace(&format!("{{{name}}}"), ex["value"].as_str().unwrap());
                    let r = c.request(&method.to_uppercase(), &url, Some(key::ALL), None);
                    assert_eq!(
                        u64::from(r.status),
                        status,
                        "{method} {url} ({label}): {}",
                        r.text()
                    );
                    checked += 1;
                }
            }
            // Request bodies' examples.
            let content = &op["requestBody"]["content"]["application/json"];
            for (label, ex) in content["examples"].as_object().into_iter().flatten() {
                let Some(status) = ex["x-status"].as_u64() else {
                    continue;
                };
                let body = ex["value"].to_string();
                let r = c.post(path, Some(key::ALL), &body);
                assert_eq!(
                    u64::from(r.status),
                    status,
                    "{method} {path} ({label}) {body}: {}",
                    r.text()
                );
                if r.status == 200 && path.contains("batch") {
                    let list = if path.contains("Verify") {
                        "requests"
                    } else {
                        "ids"
                    };
                    let sent = ex["value"][list].as_array().unwrap().len();
                    assert_eq!(r.json()["results"].as_array().unwrap().len(), sent);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} examples checked");
    // The served document is the file.
    assert_eq!(
        c.get("/v1/openapi.yaml", None).text(),
        dancu_server::OPENAPI_YAML
    );
}
