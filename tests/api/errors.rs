//! Malformed requests get clear errors in the API format.

use crate::helpers::*;

#[tokio::test]
async fn malformed_requests_get_clear_json_errors() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let raw = |method: reqwest::Method, path: &str, ct: &str, body: &'static [u8]| {
        admin.req(method, path).header("content-type", ct.to_string()).body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            raw(reqwest::Method::POST, "/api/v1/clients", "application/json", b"{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(reqwest::Method::POST, "/api/v1/clients", "text/plain", b"{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(reqwest::Method::POST, "/api/v1/clients", "application/json", b"{\"first_name\": 3}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            raw(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents"), "application/json", b"{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                reqwest::Method::POST,
                &format!("/api/v1/clients/{client}/documents"),
                "multipart/form-data; boundary=X",
                b"--X\r\nbroken",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            raw(reqwest::Method::GET, "/api/v1/clients?status=maybe", "application/json", b""),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            raw(reqwest::Method::GET, "/api/v1/clients/not-a-uuid", "application/json", b""),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            raw(reqwest::Method::GET, "/api/v1/nothing-here", "application/json", b""),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let (s, v) = admin.send(req).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "case {i}: {v}");
    }
    let (s, v) = Api::anonymous(&env.server).get("/api/v1/me").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
}
