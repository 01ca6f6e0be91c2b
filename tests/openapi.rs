//! The OpenAPI document the server serves describes every route of the router, with a
//! summary and a success response each, and every schema it references exists.

mod common;

use std::collections::BTreeSet;

use common::*;
use hangar::api::openapi::openapi_path;
use hangar::api::route_table;

fn refs(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                out.insert(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_route_is_documented_and_every_reference_resolves() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.anon().get("/openapi.json").await.unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let routes = route_table();
    let mut operations = 0;
    for def in &routes {
        let (path, params) = openapi_path(def.path);
        let method = def.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][&path][&method];
        assert!(
            op.is_object(),
            "{} {path} is not in the document",
            def.method
        );
        operations += 1;
        let summary = op["summary"].as_str().unwrap_or_default();
        assert!(!summary.is_empty(), "{} {path} has no summary", def.method);
        let responses = op["responses"].as_object().unwrap();
        let success: Vec<&String> = responses
            .keys()
            .filter(|s| s.starts_with(['1', '2']))
            .collect();
        assert!(
            !success.is_empty(),
            "{} {path}: no success response",
            def.method
        );
        for s in success {
            assert_ne!(
                responses[s]["description"], "undocumented",
                "{} {path} does not say what it returns",
                def.method
            );
        }
        assert!(
            responses.contains_key("default"),
            "{} {path} documents no error",
            def.method
        );
        let documented: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            documented,
            params.into_iter().collect(),
            "{} {path}",
            def.method
        );
    }
    // Nothing in the document that the router does not serve.
    let in_doc: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(in_doc, operations);

    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    assert!(
        all.contains("#/components/schemas/WorkspaceView"),
        "{all:?}"
    );
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema reference");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is referenced but not defined"
        );
    }
    app.stop().await;
}
