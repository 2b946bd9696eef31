//! What a route is, apart from its handler: method, path, who may call it,
//! what it takes and returns. `crate::api` declares every route with one;
//! `crate::openapi` and the authorization matrix read them.

use axum::http::Method;
use schemars::JsonSchema;

use crate::access::Access;

/// A JSON type in a request or response, for the API document.
#[derive(Clone, Copy)]
pub struct JsonType {
    /// Its component name in the document.
    pub name: fn() -> String,
    /// Registers its schema (and what it contains) with a generator.
    pub register: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

fn name_of<T: JsonSchema>() -> String {
    T::schema_name().into_owned()
}

fn register<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

/// A request or response body.
#[derive(Clone, Copy)]
pub enum Body {
    Nothing,
    Json(JsonType),
    /// A JSON array of the type.
    JsonList(JsonType),
    /// Another media type (raw bytes, CSV, an event stream, plain text).
    Media(&'static str),
}

pub(crate) fn json<T: JsonSchema>() -> Body {
    Body::Json(JsonType {
        name: name_of::<T>,
        register: register::<T>,
    })
}

pub(crate) fn list<T: JsonSchema>() -> Body {
    Body::JsonList(JsonType {
        name: name_of::<T>,
        register: register::<T>,
    })
}

/// What a route is, without its handler: what the document and the
/// authorization matrix read.
#[derive(Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    pub request: Body,
    /// Success status and body.
    pub response: (u16, Body),
}
