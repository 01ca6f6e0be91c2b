//! The API's OpenAPI 3 document, served at `/api/v2/openapi.json`. It is generated from
//! `route_table()`, the same table the router is built from, so it cannot miss a route;
//! each route's entry there says what it takes and returns, and the schemas come from the
//! `wire` types themselves (`utoipa::ToSchema`).

use std::sync::OnceLock;

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    ResponseBuilder, Server,
};
use utoipa::{IntoParams, ToSchema};

use super::{Access, RouteDef};
use crate::wire::ErrorBody;

/// A wire type named in the document: its name and how to add its schemas to it.
#[derive(Clone, Copy)]
pub struct Shape {
    name: fn() -> String,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl Shape {
    pub fn of<T: ToSchema>() -> Shape {
        Shape {
            name: || T::name().into_owned(),
            collect: |out| {
                out.push((T::name().into_owned(), T::schema()));
                T::schemas(out);
            },
        }
    }

    fn reference(self, schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
        (self.collect)(schemas);
        Ref::from_schema_name((self.name)()).into()
    }
}

/// What a route reads from its body.
#[derive(Clone, Copy, Default)]
pub enum Body {
    #[default]
    Empty,
    Json(Shape),
    /// A tar archive (template push).
    Tar,
}

/// What a route answers when it succeeds.
#[derive(Clone, Copy)]
pub enum Reply {
    Json(u16, Shape),
    JsonList(u16, Shape),
    NoContent,
    /// Anything that is not JSON: a tar, a script, a binary, an event stream.
    Raw {
        content_type: &'static str,
        what: &'static str,
    },
    /// The request upgrades to a WebSocket.
    WebSocket,
}

/// A route's documentation, written beside it in `route_table()`.
#[derive(Clone, Copy, Default)]
pub struct RouteDoc {
    pub summary: &'static str,
    pub body: Body,
    pub query: Option<fn() -> Vec<utoipa::openapi::path::Parameter>>,
    pub reply: Option<Reply>,
    /// A second success: a 204 and what it means.
    pub or_no_content: Option<&'static str>,
}

impl RouteDef {
    pub(super) fn doc(mut self, summary: &'static str) -> Self {
        self.doc.summary = summary;
        self
    }
    pub(super) fn body<T: ToSchema>(mut self) -> Self {
        self.doc.body = Body::Json(Shape::of::<T>());
        self
    }
    pub(super) fn tar_body(mut self) -> Self {
        self.doc.body = Body::Tar;
        self
    }
    pub(super) fn query<Q: IntoParams>(mut self) -> Self {
        self.doc.query = Some(|| Q::into_params(|| None));
        self
    }
    pub(super) fn ok<T: ToSchema>(self) -> Self {
        self.reply(Reply::Json(200, Shape::of::<T>()))
    }
    pub(super) fn created<T: ToSchema>(self) -> Self {
        self.reply(Reply::Json(201, Shape::of::<T>()))
    }
    pub(super) fn list<T: ToSchema>(self) -> Self {
        self.reply(Reply::JsonList(200, Shape::of::<T>()))
    }
    pub(super) fn no_content(self) -> Self {
        self.reply(Reply::NoContent)
    }
    pub(super) fn raw(self, content_type: &'static str, what: &'static str) -> Self {
        self.reply(Reply::Raw { content_type, what })
    }
    pub(super) fn or_no_content(mut self, what: &'static str) -> Self {
        self.doc.or_no_content = Some(what);
        self
    }
    pub(super) fn websocket(self) -> Self {
        self.reply(Reply::WebSocket)
    }
    fn reply(mut self, reply: Reply) -> Self {
        self.doc.reply = Some(reply);
        self
    }
}

/// `/workspaces/:owner/:name` → `/workspaces/{owner}/{name}`, and the parameter names.
pub fn openapi_path(path: &str) -> (String, Vec<&str>) {
    let mut names = Vec::new();
    let parts: Vec<String> = path
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => {
                names.push(name);
                format!("{{{name}}}")
            }
            None => seg.to_string(),
        })
        .collect();
    (parts.join("/"), names)
}

fn http_method(m: &axum::http::Method) -> HttpMethod {
    match m.as_str() {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

fn string_schema() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn binary_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("binary".into())))
        .into()
}

/// `GET <method> <path>` → `get_workspaces_owner_name_builds`: unique, stable, readable.
fn operation_id(def: &RouteDef) -> String {
    let mut id = def.method.as_str().to_ascii_lowercase();
    for seg in def.path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(seg.trim_start_matches(':').chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        }));
    }
    id
}

/// The document for `routes` (the server serves the one for `route_table()`).
pub fn document(routes: &[RouteDef]) -> OpenApi {
    let mut schemas = Vec::new();
    let error = Shape::of::<ErrorBody>().reference(&mut schemas);
    let mut paths = Paths::new();
    for def in routes {
        let doc = def.doc;
        let (path, names) = openapi_path(def.path);
        let mut op = OperationBuilder::new()
            .summary(Some(doc.summary))
            .operation_id(Some(operation_id(def)));
        for name in names {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(string_schema())),
            );
        }
        for p in doc.query.map(|q| q()).unwrap_or_default() {
            op = op.parameter(p);
        }
        let body: Vec<(&str, RefOr<Schema>)> = match doc.body {
            Body::Empty => vec![],
            Body::Json(shape) => vec![("application/json", shape.reference(&mut schemas))],
            // The server reads the bytes whatever the type says; clients send either.
            Body::Tar => vec![
                ("application/x-tar", binary_schema().into()),
                ("application/octet-stream", binary_schema().into()),
            ],
        };
        if !body.is_empty() {
            let mut request = RequestBodyBuilder::new().required(Some(Required::True));
            for (content_type, schema) in body {
                request = request.content(
                    content_type,
                    ContentBuilder::new().schema(Some(schema)).build(),
                );
            }
            op = op.request_body(Some(request.build()));
        }
        let json = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
        let (status, response) = match doc.reply {
            Some(Reply::Json(status, shape)) => (
                status,
                ResponseBuilder::new()
                    .description("success")
                    .content("application/json", json(shape.reference(&mut schemas))),
            ),
            Some(Reply::JsonList(status, shape)) => {
                let items = shape.reference(&mut schemas);
                let array: Schema = ArrayBuilder::new().items(items).into();
                (
                    status,
                    ResponseBuilder::new()
                        .description("success")
                        .content("application/json", json(array.into())),
                )
            }
            Some(Reply::NoContent) => (204, ResponseBuilder::new().description("done")),
            Some(Reply::Raw { content_type, what }) => (
                200,
                ResponseBuilder::new().description(what).content(
                    content_type,
                    ContentBuilder::new().schema(Some(binary_schema())).build(),
                ),
            ),
            Some(Reply::WebSocket) => (
                101,
                ResponseBuilder::new().description("switches to a WebSocket"),
            ),
            None => (200, ResponseBuilder::new().description("undocumented")),
        };
        if let Some(what) = doc.or_no_content {
            op = op.response("204", ResponseBuilder::new().description(what).build());
        }
        op = op.response(status.to_string(), response.build()).response(
            "default",
            ResponseBuilder::new()
                .description("an error: its message says what went wrong and what to do")
                .content("application/json", json(error.clone()))
                .build(),
        );
        if def.access != Access::Public {
            op = op.security(SecurityRequirement::new(
                "session_token",
                Vec::<String>::new(),
            ));
        }
        paths.add_path_operation(path, vec![http_method(&def.method)], op.build());
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Hangar")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Hangar's REST API. Authenticate with `Authorization: Bearer <token>` (a session from `/users/login` or an API token).",
                ))
                .build(),
        )
        .servers(Some(vec![Server::new("/api/v2")]))
        .paths(paths)
        .components(Some(
            ComponentsBuilder::new()
                .schemas_from_iter(schemas)
                .security_scheme(
                    "session_token",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
                )
                .build(),
        ))
        .build()
}

/// `GET /openapi.json`: built once, on first request.
pub async fn serve() -> axum::response::Response {
    use axum::response::IntoResponse;
    static DOC: OnceLock<String> = OnceLock::new();
    let json = DOC.get_or_init(|| {
        document(&super::route_table())
            .to_json()
            .expect("the OpenAPI document serializes")
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json.clone(),
    )
        .into_response()
}
