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

#[tokio::test]
async fn free_text_unknown_fields_and_implausible_values_are_refused_without_echo() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let base = json!({"first_name": "Jan", "initials": "J.", "last_name": "Jansen", "birth_date": "1980-02-03",
                      "commissioner": "uwv"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("first_name", json!("Jan\r\nSet-Cookie: x")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("last_name", json!("Jansen\u{1b}[31m")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("city", json!("Utrecht\u{202E}")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("address", json!("Straat\u{0}1")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("initials", json!("J.".repeat(30))), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("birth_date", json!("1800-01-01")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("birth_date", json!("2999-01-01")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("email", json!("geen-adres")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("bsn", json!("111222334")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_bsn"),
        (with("owner", json!("x")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (with("last_name", json!("x".repeat(2_000_000))), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let (s, v) = admin.post("/api/v1/clients", body).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "case {i}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(!msg.contains("Set-Cookie") && !msg.contains("111222334") && !msg.contains("geen-adres"), "{msg}");
    }
    // A PATCH with a field it does not know changes nothing and says so.
    let (_, me) = admin.get("/api/v1/me").await;
    let (s, v) = admin
        .patch(&format!("/api/v1/users/{}", me["id"].as_str().unwrap()), json!({"password": "nieuw wachtwoord!"}))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
    // A body that is not an object is refused, also when serde could read it.
    let (s, v) = admin.patch(&format!("/api/v1/users/{}", me["id"].as_str().unwrap()), json!([null, null])).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
    // Nothing was created by any of it.
    let (_, list) = admin.get("/api/v1/clients").await;
    assert_eq!(list["clients"].as_array().unwrap().len(), 0);
}
