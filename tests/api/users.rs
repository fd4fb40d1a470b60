//! Users: creation rules, role changes, the OpenAPI document, metrics.

use crate::helpers::*;

const METRICS_TOKEN: &str = "metrics-token-for-the-test";

async fn users_api(b: Backend) {
    let env = start(b, &[("KLUIS_METRICS", "bearer"), ("KLUIS_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let admin = env.admin().await;
    let (s, v) = admin.post("/api/v1/users", json!({"username": "kort", "role": "office", "password": "short"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password")));
    let office = env.user(&admin, "olga", "office").await;
    let (s, _) = admin.post("/api/v1/users", json!({"username": "olga", "role": "office", "password": PASSWORD})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = admin.get("/api/v1/users").await;
    assert_eq!((s, v["users"].as_array().unwrap().len()), (StatusCode::OK, 2));
    let bea = env.user(&admin, "bea", "administration").await;
    let bea = Api::login(&env.server, &bea).await;
    assert_eq!(bea.get("/api/v1/users").await.0, StatusCode::FORBIDDEN);
    let (s, v) = bea
        .post(
            "/api/v1/clients",
            json!({"first_name": "A", "initials": "A.", "last_name": "B", "birth_date": "1990-01-01", "commissioner": "uwv"}),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let olga = Api::login(&env.server, &office).await;
    let (s, v) = olga
        .post("/api/v1/clients", json!({"first_name": "A", "initials": "A.", "last_name": "B", "birth_date": "1990-01-01", "bsn": "111222334", "commissioner": "uwv"}))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_bsn")));
    assert!(!v.to_string().contains("111222334"), "the error must not echo the number");
    // Office cannot hand out the management role, nor change its own role.
    let (s, v) =
        olga.post("/api/v1/users", json!({"username": "baas", "role": "management", "password": PASSWORD})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (s, _) = olga.patch(&format!("/api/v1/users/{}", office.id), json!({"role": "management"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = olga.patch(&format!("/api/v1/users/{}", env.admin.id), json!({"active": false})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The last active manager stays.
    let (s, v) = Api::login(&env.server, &env.admin)
        .await
        .patch(&format!("/api/v1/users/{}", env.admin.id), json!({"active": false}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "not on oneself: {v}");
    // Role change ends the sessions.
    let (s, v) = admin.patch(&format!("/api/v1/users/{}", office.id), json!({"role": "management"})).await;
    assert_eq!((s, v["role"].as_str()), (StatusCode::OK, Some("management")));
    assert_eq!(olga.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    // The OpenAPI document describes the routes.
    let (s, api) = Api::anonymous(&env.server).get("/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in ["/api/v1/session", "/api/v1/clients/{id}/documents", "/api/v1/download/{token}"] {
        assert!(api["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    // Metrics are for the holder of the metrics token only.
    let url = format!("{}/metrics", env.server.base);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let wrong = reqwest::Client::new().get(&url).bearer_auth("metrics-token-for-the-tesT").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let metrics = reqwest::Client::new().get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("kluis_http_requests_total{route=\"/api/v1/users\""), "{metrics}");
}
on_both_backends!(users_api_and_operations, users_api);
