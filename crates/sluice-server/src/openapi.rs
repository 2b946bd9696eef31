//! The OpenAPI document of the declared routes (`crate::api::routes`,
//! served at `/openapi.json`): every route, who
//! may call it, and its bodies' JSON Schemas generated from the types
//! themselves (schemars, OpenAPI 3.0 dialect), so that the document cannot
//! drift from what the server sends and accepts. Responses are described as
//! serialised, request bodies as deserialised (a field with a default is
//! optional there); a type whose two forms differ appears twice, the
//! request form named `…Input`.

use serde_json::{Value, json};

use crate::access::Access;
use crate::route_spec::{Body, RouteSpec};

/// (components, request name → component name) for `routes`' bodies.
fn components(
    routes: &[RouteSpec],
) -> (
    serde_json::Map<String, Value>,
    std::collections::BTreeMap<String, String>,
) {
    use schemars::generate::{Contract, SchemaSettings};
    let generate = |contract: Contract| {
        SchemaSettings::openapi3()
            .with(|s| s.contract = contract)
            .into_generator()
    };
    let json_type = |b: &Body| match b {
        Body::Json(t) | Body::JsonList(t) => Some(*t),
        _ => None,
    };
    let mut out = generate(Contract::Serialize);
    for t in routes.iter().filter_map(|r| json_type(&r.response.1)) {
        let schema = (t.register)(&mut out);
        assert_eq!(
            schema.get("$ref").and_then(Value::as_str),
            Some(format!("#/components/schemas/{}", (t.name)()).as_str()),
            "a response type is a named component"
        );
    }
    let mut input = generate(Contract::Deserialize);
    let mut requests = serde_json::Map::new();
    for t in routes.iter().filter_map(|r| json_type(&r.request)) {
        let schema = (t.register)(&mut input);
        requests.insert(
            (t.name)(),
            serde_json::to_value(schema).expect("a schema serialises"),
        );
    }
    merge(
        out.take_definitions(true),
        input.take_definitions(true),
        requests,
    )
}

/// Joins the response and request definitions; a request definition that
/// differs from the response one of the same name is renamed `…Input`, and
/// every reference to it follows.
fn merge(
    mut components: serde_json::Map<String, Value>,
    mut input: serde_json::Map<String, Value>,
    roots: serde_json::Map<String, Value>,
) -> (
    serde_json::Map<String, Value>,
    std::collections::BTreeMap<String, String>,
) {
    let renamed: std::collections::BTreeMap<String, String> = input
        .iter()
        .filter(|(name, schema)| components.get(*name).is_some_and(|s| s != *schema))
        .map(|(name, _)| (name.clone(), format!("{name}Input")))
        .collect();
    fn follow(v: &mut Value, renamed: &std::collections::BTreeMap<String, String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref")
                    && let Some(to) = r
                        .strip_prefix("#/components/schemas/")
                        .and_then(|name| renamed.get(name))
                {
                    *r = format!("#/components/schemas/{to}");
                }
                map.values_mut().for_each(|v| follow(v, renamed));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| follow(v, renamed)),
            _ => {}
        }
    }
    for schema in input.values_mut() {
        follow(schema, &renamed);
    }
    for (name, schema) in input {
        let name = renamed.get(&name).cloned().unwrap_or(name);
        components.entry(name).or_insert(schema);
    }
    // A request root is a reference (to its component, maybe renamed).
    let mut request_names = std::collections::BTreeMap::new();
    for (name, mut root) in roots {
        follow(&mut root, &renamed);
        let target = root["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                // Inlined (not a named struct): store it under its name.
                components.insert(name.clone(), root.clone());
                name.clone()
            });
        request_names.insert(name, target);
    }
    (components, request_names)
}

/// A body's media type and schema: a JSON type refers to its component
/// (`component` maps a type's name to the component that describes it).
fn media(body: &Body, component: impl Fn(&str) -> String) -> (&'static str, Value) {
    let reference =
        |name: String| json!({"$ref": format!("#/components/schemas/{}", component(&name))});
    match body {
        Body::Json(t) => ("application/json", reference((t.name)())),
        Body::JsonList(t) => (
            "application/json",
            json!({"type": "array", "items": reference((t.name)())}),
        ),
        Body::Media("application/json") => ("application/json", json!({"type": "object"})),
        Body::Media(m @ ("text/event-stream" | "application/toml" | "text/plain" | "text/csv")) => {
            (m, json!({"type": "string"}))
        }
        Body::Media(m) => (m, json!({"type": "string", "format": "binary"})),
        Body::Nothing => ("application/json", json!({})),
    }
}

/// The document: OpenAPI 3.0.3, bearer-token security on every route but
/// the public ones, the error body on every error status.
pub fn document(routes: &[RouteSpec]) -> Value {
    let (mut schemas, request_names) = components(routes);
    let response = |name: &str| name.to_owned();
    let request = |name: &str| {
        request_names
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("a route takes {name}, which has no request schema"))
    };
    let mut paths = serde_json::Map::new();
    for route in routes {
        let method = route.method.as_str().to_ascii_lowercase();
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let (ok_status, ok_body) = &route.response;
        let mut responses = serde_json::Map::new();
        let ok = match ok_body {
            Body::Nothing => json!({"description": "done"}),
            body => {
                let (mt, schema) = media(body, response);
                json!({"description": "success", "content": {mt: {"schema": schema}}})
            }
        };
        responses.insert(ok_status.to_string(), ok);
        responses.insert(
            "default".into(),
            json!({"description": "an error: a stable code, a message, maybe a hint",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
        let mut op = json!({
            "summary": route.summary,
            "description": format!("Who: {}.", route.access.describe()),
            "operationId": format!("{method}{}", route.path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if route.access == Access::Public {
            op["security"] = json!([]);
        }
        if !matches!(route.request, Body::Nothing) {
            let (mt, schema) = media(&route.request, request);
            op["requestBody"] = json!({"required": true, "content": {mt: {"schema": schema}}});
        }
        paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object")
            .insert(method, op);
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable error code (docs/api.md)"},
                "message": {"type": "string"},
                "hint": {"type": "string"}
            }
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Sluice API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Privacy-preserving computation on public-sector data: only differentially private results leave. See docs/api.md."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Collects every `$ref` target in `v`.
    fn refs(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(|r| r.as_str()) {
                    out.insert(r.to_owned());
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// Bodies are described field by field, and every reference resolves.
    #[test]
    fn every_body_has_a_field_level_schema_and_every_reference_resolves() {
        let doc = super::document(&crate::api::route_specs());
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut all = BTreeSet::new();
        refs(&doc, &mut all);
        for r in &all {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
        // Fields are named, typed and described from the code.
        let job = &schemas["JobView"];
        assert_eq!(job["type"], "object");
        assert_eq!(job["properties"]["epsilon"]["type"], "string");
        assert!(
            job["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("manifest_digest"))
        );
        let agreement = &schemas["AgreementView"]["properties"];
        assert!(agreement["epsilon"]["description"].is_string());
        // A request's defaulted field is optional; unknown fields are refused.
        let apply = &schemas[doc["paths"]["/v1/applications"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()];
        assert_eq!(apply["additionalProperties"], false);
        assert!(
            apply["required"]
                .as_array()
                .is_none_or(|r| !r.contains(&serde_json::json!("title")))
        );
    }

    #[test]
    fn the_document_has_one_operation_per_declared_route() {
        let doc = super::document(&crate::api::route_specs());
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        let declared = crate::api::route_specs();
        assert!(declared.len() > 40);
        assert_eq!(
            operations,
            declared.len(),
            "a (method, path) is declared twice"
        );
    }
}
