//! Two-step login: refusals, lock-out, the per-address rate limit.

use crate::helpers::*;

/// Five failures lock a name whether or not it exists, with the same
/// answers: the lock-out does not tell which names are real.
#[tokio::test]
async fn unknown_names_are_locked_out_like_real_ones() {
    let env = start(support::embedded().await, &[]).await;
    let anon = Api::anonymous(&env.server);
    let mut answers = Vec::new();
    for name in ["ghost", env.admin.username.as_str()] {
        let mut seen = Vec::new();
        for _ in 0..6 {
            let (s, v) = anon
                .post("/api/v1/session", json!({"username": name, "password": "wrong password!!", "otp": "000000"}))
                .await;
            seen.push((s, v["error"]["code"].as_str().map(str::to_string)));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "an unknown name and a real one answer alike");
    assert_eq!(answers[0][4].0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (answers[0][5].0, answers[0][5].1.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts"))
    );
}

async fn login_refusals(b: Backend) {
    let env = start(b, &[]).await;
    let anon = Api::anonymous(&env.server);
    let login = |password: &'static str, otp: String| {
        let anon = anon.clone();
        let username = env.admin.username.clone();
        async move { anon.post("/api/v1/session", json!({"username": username, "password": password, "otp": otp})).await }
    };
    // Unknown user, wrong password, wrong code: all the same answer.
    let (s, v) =
        anon.post("/api/v1/session", json!({"username": "nobody", "password": PASSWORD, "otp": "123456"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));
    let code = fresh_code(&env.admin.secret).await;
    let (s, v) = login("wrong password!!", code).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));
    let (s, _) = login(PASSWORD, "000000".into()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A code works once.
    let code = fresh_code(&env.admin.secret).await;
    assert_eq!(login(PASSWORD, code.clone()).await.0, StatusCode::OK);
    let (s, _) = login(PASSWORD, code).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "replayed code");
    // Five failures in a row (the replay was the first) lock the account,
    // also for the right credentials.
    for _ in 0..4 {
        assert_eq!(login("wrong password!!", "000000".into()).await.0, StatusCode::UNAUTHORIZED);
    }
    let code = fresh_code(&env.admin.secret).await;
    let (s, v) = login(PASSWORD, code).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")));
    // No session was made by any of it.
    assert_eq!(Api { token: Some("x".into()), ..anon.clone() }.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
}
on_both_backends!(login_refuses_wrong_password_wrong_or_replayed_code_and_locks_out, login_refusals);

#[tokio::test]
async fn login_is_rate_limited_per_address() {
    let env = start(support::embedded().await, &[("KLUIS_LOGIN_RATE_PER_MINUTE", "3")]).await;
    let anon = Api::anonymous(&env.server);
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(anon.post("/api/v1/session", json!({"username": "x", "password": "y", "otp": "1"})).await.0);
    }
    assert_eq!(codes, [401, 401, 401, 429].map(|c| StatusCode::from_u16(c).unwrap()));
}
