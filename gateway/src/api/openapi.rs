//! `/api/v1/openapi.json`: generated from the handlers' annotations and the
//! vault's request and response types, so the document cannot drift from
//! the code. Responses every operation of a kind can give (401 without a
//! session, 400/415/422 for a body or query, 404 for a path id, 500, 503)
//! are added here once, each with the error schema; each handler lists
//! the answers particular to it.

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};

struct Common;

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build()
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_string()).or_insert_with(|| error_response(description).into());
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn has_parameter(op: &Operation, kind: ParameterIn) -> bool {
    op.parameters.as_ref().is_some_and(|ps| {
        ps.iter().any(|p| match p {
            utoipa::openapi::RefOr::T(p) => p.parameter_in == kind,
            utoipa::openapi::RefOr::Ref(_) => false,
        })
    })
}

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for item in openapi.paths.paths.values_mut() {
            let has_path_params = item.parameters.is_some();
            for op in operations(item) {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let path_param = has_path_params || has_parameter(op, ParameterIn::Path);
                let query = has_parameter(op, ParameterIn::Query);
                if secured {
                    add(op, "401", "`unauthorized`: no valid session token");
                }
                if has_body {
                    add(op, "400", "`invalid_json`: the body is not JSON; `bad_request`: it could not be read");
                    add(op, "408", "`timeout`: the body stalled");
                    add(op, "413", "`too_large`: the body is too large");
                    add(op, "415", "`unsupported_media_type`: wrong content type");
                    add(
                        op,
                        "422",
                        "`invalid_body`: a field is missing, unknown, repeated or of the wrong type; `invalid_field`",
                    );
                }
                if query {
                    add(op, "400", "`invalid_query`: an unknown or repeated parameter, or one of the wrong form");
                }
                if path_param {
                    add(op, "404", "`not_found`: no such resource (a malformed id too), or outside your scope");
                }
                add(op, "500", "`internal`: see the server log");
                add(op, "503", "`database_unavailable`, `storage_unavailable`, `busy`: try again later");
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kluis",
        description = "A secure document vault (SPEC §6). Every error is {\"error\": {\"code\", \"message\"}}, with the codes listed in ErrorDetail.code.",
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;

/// Complete the document once every route is in it (the routes are added
/// by the router, after `ApiDoc::openapi()`).
pub fn finish(api: &mut utoipa::openapi::OpenApi) {
    Common.modify(api);
}
