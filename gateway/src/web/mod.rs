//! The web UI: server-rendered pages for every role, on the same vault
//! operations as the API (SPEC §6 "Web UI", issue 12).
//!
//! Its own router, its own headers: a strict Content-Security-Policy (no
//! inline script or style; scripts, styles and images from this origin
//! only), no caching of pages, no framing. Templates (`gateway/templates`,
//! askama) are checked at compile time and escape by default; messages are
//! Fluent files (`gateway/locales`); static files are embedded
//! (`assets.rs`). Sessions, cookies and the cross-site checks are in
//! `session.rs`; the handlers in `pages.rs` stay thin.

pub mod assets;
pub mod i18n;
pub mod pages;
pub mod session;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::AppState;

/// The policy of every page (issue 12).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest form body besides uploads (sign-in, download, language).
const FORM_LIMIT: usize = 16 * 1024;

/// The pages. `upload_limit` bounds an upload's body like the API's.
pub fn router(upload_limit: u64) -> Router<AppState> {
    let forms = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/login/code", get(pages::code_form).post(pages::code_submit))
        .route("/logout", post(pages::logout))
        .route("/toegankelijkheid", get(pages::accessibility))
        .route("/language", post(pages::set_language))
        .route("/clients/new", get(pages::new_client).post(pages::create_client))
        .route("/clients/{id}", get(pages::client))
        .route("/clients/{id}/close", post(pages::close_trajectory))
        .route("/clients/{id}/reopen", post(pages::reopen_trajectory))
        .route("/clients/{id}/bsn", post(pages::reveal_bsn))
        .route("/search", get(pages::search))
        .route("/clients/{id}/export", post(pages::export))
        .route("/documents/{id}/legal-hold", post(pages::legal_hold))
        .route("/clients/{id}/coach", post(pages::assign_coach))
        .route("/clients/{id}/restriction", post(pages::set_restriction))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{id}", post(pages::update_user))
        .route("/substitutions", get(pages::substitutions).post(pages::create_substitution))
        .route("/substitutions/{id}/end", post(pages::end_substitution))
        .route("/retention", get(pages::retention))
        .route("/audit", get(pages::audit))
        // GET shows the log (a reload after a verification), POST verifies.
        .route("/audit/verify", get(pages::audit).post(pages::audit_verify))
        .route("/breaches", get(pages::breaches).post(pages::register_breach))
        .route("/breaches/{id}", post(pages::update_breach))
        .route("/documents/{id}/download", post(pages::download))
        .layer(DefaultBodyLimit::max(FORM_LIMIT));
    let uploads = Router::new()
        .route("/clients/{id}/documents", post(pages::upload))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(upload_limit, crate::server::limit_body));
    forms
        .merge(uploads)
        .layer(middleware::from_fn(session::refuse_cross_site))
        // A download keeps its own, stricter policy (`sandbox`).
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .route("/assets/{hash}/{name}", get(assets::serve))
}
