//! `/api/v1/openapi.json`, generated from the handlers' annotations, so the
//! document cannot drift from the code.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{access, clients, documents, download, session, users};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Kluis", description = "A secure document vault (SPEC §6). Errors are {\"error\": {\"code\", \"message\"}}."),
    paths(
        session::login, session::logout, session::me,
        users::create, users::list, users::patch,
        clients::create, clients::list, clients::get, clients::reveal_bsn, clients::assign_coach, clients::close,
        documents::upload, documents::list, documents::get, documents::issue_token,
        download::download,
        access::create_substitution, access::list_substitutions, access::end_substitution,
        access::set_restriction, access::audit_log, access::audit_verify, access::access_log,
    ),
    components(schemas(
        session::Login, session::NewSession, session::SessionUser,
        users::NewUser, users::CreatedUser, users::UserView, users::UserPatch,
        clients::NewClient, clients::ClientView, clients::AssignCoach, clients::CloseTrajectory,
        documents::DocumentView, documents::TokenRequest, documents::IssuedToken,
        access::NewSubstitution, access::SubstitutionView, access::Restriction, access::AuditView, access::AccessEntry,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
