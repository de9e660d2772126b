//! GET /api/openapi.json: an OpenAPI 3 document of every route the route
//! table serves to programs, whose references all resolve. (CI also runs
//! openapi-spec-validator on it and schemathesis against a live server.)

use serde_json::Value;

use crate::helpers::spawn_app;

/// The paths of src/routes/mod.rs's route table, scope prefixes applied;
/// the console (`/admin`) is pages for people, left out of the document.
fn route_table() -> Vec<String> {
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/mod.rs")).unwrap();
    let table = &src[src.find("pub fn configure").unwrap()..src.find("pub struct ApiDoc").unwrap()];
    let mut scope = String::new();
    let mut paths = Vec::new();
    for line in table.lines() {
        let quoted = |marker: &str| {
            line.find(marker).map(|i| {
                let rest = &line[i + marker.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
        };
        if let Some(s) = quoted("scope(\"") {
            scope = s;
            continue;
        }
        if let Some(p) = quoted("route(\"").or_else(|| quoted("resource(\"")) {
            // Top-level routes and resources sit outside any scope.
            let top_level = line.trim_start().starts_with("cfg.") || line.contains("resource(");
            paths.push(if top_level { p } else { format!("{scope}{p}") });
        }
    }
    paths.retain(|p| !p.starts_with("/admin"));
    paths.sort();
    paths.dedup();
    paths
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_covers_every_route_and_its_references_resolve() {
    let app = spawn_app().await;

    let res = app.get("/api/openapi.json").await;

    assert_eq!(res.status().as_u16(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["servers"][0]["url"], "http://tidings.test");
    let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    let table = route_table();
    assert!(table.len() >= 15, "{table:?}");
    for path in &table {
        assert!(
            documented.contains(&path),
            "{path} is served but not in the document ({documented:?})"
        );
    }
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            if path.starts_with("/api/") && path != "/api/openapi.json" {
                assert_eq!(
                    op["security"][0]["bearer"],
                    serde_json::json!([]),
                    "{method} {path}"
                );
                assert!(responses.contains_key("401"), "{method} {path}");
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
}
