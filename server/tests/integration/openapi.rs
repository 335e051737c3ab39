//! `openapi.yaml` stays true: every route the router knows is documented
//! (and nothing else), every `$ref` resolves, and every example marked
//! `x-status` gets that status from a real server.

use serde_json::Value;

use crate::support::*;

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
    let server = TestServer::shared();
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
