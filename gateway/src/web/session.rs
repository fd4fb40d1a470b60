//! The web UI's session: cookies, the signed-in caller of a page, and the
//! checks that a state-changing form came from Kluis itself.
//!
//! - `__Host-kluis_sid` holds a session token of the vault (the same
//!   sessions as the API's bearer tokens: the same expiry, idle timeout and
//!   revocation), `Secure; HttpOnly; SameSite=Strict; Path=/`, no `Domain`.
//!   The page extractor [`Page`] turns it into the same [`Caller`] the
//!   API's bearer extractor yields. The API never reads this cookie.
//! - `__Host-kluis_login` holds the handle of a sign-in's first step (the
//!   name and password stay in the catalog, sealed, five minutes, used once;
//!   `Vault::begin_login`).
//!   Each step sets a new cookie value: the first step's value after the
//!   password, a new session token after the code.
//! - The language: a signed-in user's stored choice, else the
//!   `kluis_lang` cookie, else the browser's `Accept-Language`.
//! - Every `POST` of the UI must come from a page of this origin: the
//!   browser's `Sec-Fetch-Site: same-origin`, or, from a browser that does
//!   not send it, an `Origin` equal to the request's own. Sensitive forms
//!   carry a token besides ([`csrf_token`]): a keyed hash of the session
//!   token and the form's name, so it needs no state.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::Digest;
use vault::service::Caller;

use super::i18n::{Lang, Tr};
use crate::api::AppState;

pub const SESSION_COOKIE: &str = "__Host-kluis_sid";
pub const LOGIN_COOKIE: &str = "__Host-kluis_login";

/// The value of cookie `name`, if the request sent it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for one of our `__Host-` cookies; `max_age` in seconds,
/// `None` for a cookie that lives as long as the browser session.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    let v = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("kluis_invalid=; Max-Age=0"))
}

/// `Set-Cookie` that removes cookie `name`.
pub fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", Some(0))
}

/// The form token of `form` for the session behind `session_token`.
pub fn csrf_token(session_token: &str, form: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(b"kluis-csrf\0");
    h.update(form.as_bytes());
    h.update(b"\0");
    h.update(session_token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Does `given` match the token of `form` for this session (compared in
/// constant time)?
pub fn csrf_ok(session_token: &str, form: &str, given: &str) -> bool {
    let want = csrf_token(session_token, form);
    given.len() == want.len() && vault::credentials::constant_time_eq(want.as_bytes(), given.as_bytes())
}

/// Did this request come from a page of this origin? `Sec-Fetch-Site`
/// decides when the browser sends it; otherwise `Origin` must name the
/// host the request was sent to. A request with neither is refused.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let mut sites = headers.get_all("sec-fetch-site").iter();
    if let Some(site) = sites.next() {
        // Exactly one, and it says same-origin.
        return site.as_bytes() == b"same-origin" && sites.next().is_none();
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// Middleware of the UI router: every method but `GET` and `HEAD` must
/// come from this origin (403 otherwise, with a page that says why).
pub async fn refuse_cross_site(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD || same_origin(req.headers()) {
        return next.run(req).await;
    }
    metrics::counter!("kluis_web_cross_site_refused_total").increment(1);
    let tr = Tr::new(Lang::of(req.headers()));
    super::pages::error_page(tr, axum::http::StatusCode::FORBIDDEN, &tr.t("error-cross-site"))
}

/// A page's signed-in caller, its language, and the session token (for
/// form tokens). Without a live session: to the sign-in page (saying the
/// session expired, when there was one), or, for a navigation that began
/// on another site (the `SameSite=Strict` cookie is not sent then), a page
/// with a same-site link to continue.
pub struct Page {
    pub caller: Caller,
    pub tr: Tr,
    pub token: String,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let tr = Tr::new(Lang::of(&parts.headers));
        // A sibling site's page can make the browser send the (Strict)
        // cookie with its subresource requests: only this origin, a
        // navigation, or a request the user typed carries the session.
        let site = parts.headers.get("sec-fetch-site").map(|v| v.as_bytes().to_vec());
        let navigation = parts.headers.get("sec-fetch-mode").is_some_and(|v| v.as_bytes() == b"navigate");
        if let Some(site) = &site
            && !matches!(site.as_slice(), b"same-origin" | b"none")
            && !navigation
        {
            return Err(super::pages::error_page(tr, axum::http::StatusCode::FORBIDDEN, &tr.t("error-cross-site")));
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            let cross_site = parts.headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site");
            if cross_site && parts.method == Method::GET {
                let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                return Err(super::pages::continue_page(tr, path));
            }
            return Err(super::pages::to_login(None));
        };
        match st.vault.authenticate(&token, crate::api::request_context(parts)).await {
            Ok(caller) => {
                // The signed-in user's own choice wins over the browser's.
                let tr = caller.user.language.map_or(tr, |l| Tr::new(Lang::from(l)));
                Ok(Page { caller, tr, token })
            }
            Err(e) if e.code == vault::service::ErrorCode::Unauthorized => {
                let mut r = super::pages::to_login(Some("expired"));
                r.headers_mut().append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
                Err(r)
            }
            Err(e) => Err(super::pages::service_error_page(tr, &e).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_same_origin_forms_pass() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site"), ("origin", "http://a"), ("host", "a")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "none")])));
        assert!(same_origin(&headers(&[("origin", "https://kluis.example:8443"), ("host", "kluis.example:8443")])));
        assert!(!same_origin(&headers(&[("origin", "https://evil.example"), ("host", "kluis.example")])));
        assert!(!same_origin(&headers(&[("origin", "null"), ("host", "kluis.example")])));
        assert!(!same_origin(&headers(&[("host", "kluis.example")])), "neither header");
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("sec-fetch-site", "cross-site")])));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let h = headers(&[("cookie", "a=1; __Host-kluis_sid=abc; kluis_lang=en"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&h, "kluis_sid"), None);
        let set = set_cookie(SESSION_COOKIE, "t", None);
        assert_eq!(set.to_str().unwrap(), "__Host-kluis_sid=t; Path=/; Secure; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn form_tokens_are_bound_to_session_and_form() {
        let t = csrf_token("session-a", "legal-hold");
        assert!(csrf_ok("session-a", "legal-hold", &t));
        assert!(!csrf_ok("session-b", "legal-hold", &t));
        assert!(!csrf_ok("session-a", "export", &t));
        assert!(!csrf_ok("session-a", "legal-hold", ""));
    }
}
