//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations
//! and the request/response types, served at `/api/v1/openapi.json`. The docs page
//! (`/api/v1/docs`, `http::routes::api_tokens::docs`) lists the operations of the same
//! document, server-rendered, with no script of anyone else's.

use std::sync::OnceLock;

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::api::{contacts, conversations, drafts, knowledge, privacy};

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Problem {
    /// A URI naming the kind of problem (`urn:sigmaai:problem:<code>`).
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) title: String,
    pub(crate) status: u16,
    pub(crate) detail: String,
    /// Quote it when asking for help.
    pub(crate) request_id: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sgm_<id>_<secret>")
                    .description(Some(
                        "An API token made by an admin on the tenant's API page. Each operation names the scope it needs.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "SigmaAI tenant API", version = "1",
         description = "Conversations, contacts, sends, review, knowledge of one tenant. Errors are RFC 9457 problem details."),
    paths(
        conversations::list, conversations::show, conversations::send,
        contacts::show, contacts::update,
        drafts::list, drafts::approve, drafts::reject,
        knowledge::list, knowledge::create, knowledge::show, knowledge::update, knowledge::delete,
        privacy::open, privacy::show, privacy::export,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "conversations", description = "The inbox, threads and sends"),
        (name = "contacts", description = "End users' profiles"),
        (name = "drafts", description = "AI replies waiting for review"),
        (name = "knowledge", description = "What the AI answers from"),
        (name = "privacy", description = "Data-subject requests (GDPR, LGPD)"),
    )
)]
pub(crate) struct ApiDoc;

/// The document as JSON (built once).
pub(crate) fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into()))
}

/// One operation, for the docs page.
pub(crate) struct Operation {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) summary: String,
    pub(crate) scopes: String,
    pub(crate) tag: String,
}

/// Every operation in the document, in path order.
pub(crate) fn operations() -> Vec<Operation> {
    let doc = ApiDoc::openapi();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let scopes = serde_json::to_value(&op.security)
                .ok()
                .and_then(|v| {
                    v.as_array()?.first()?.get("bearer")?.as_array().map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                })
                .unwrap_or_default();
            out.push(Operation {
                method: method.to_owned(),
                path: path.clone(),
                summary: op.summary.clone().unwrap_or_default(),
                scopes,
                tag: op
                    .tags
                    .as_ref()
                    .and_then(|t| t.first().cloned())
                    .unwrap_or_default(),
            });
        }
    }
    out
}

pub(crate) async fn spec() -> Response {
    let mut resp = document().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
