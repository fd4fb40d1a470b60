//! The two-page sign-in's first step against real backends with an
//! injectable clock (issue 12): kept in the catalog, never in the browser,
//! used once, five minutes long, swept when abandoned.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/vault.rs"]
mod vault_support;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use support::Backend;
use vault::Vault;
use vault::clock::{Clock, ManualClock};
use vault::domain::Role;
use vault::service::{By, ErrorCode, NewUser, RequestContext};
use zeroize::Zeroizing;

fn code(secret: &str, at: chrono::DateTime<Utc>) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).with_skew(1).build().unwrap();
    totp.generate(at.timestamp() as u64).to_string()
}

async fn steps(b: Backend) {
    let start = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let v = Vault::open_with_clock(&vault_support::config(&b), clock.clone()).await.unwrap();
    let password = "een lang wachtwoord voor kees";
    let kees = v
        .create_user(
            By::Operator,
            NewUser {
                username: "kees".into(),
                display_name: None,
                role: Role::Coach,
                password: password.to_string().into(),
            },
        )
        .await
        .unwrap();
    let ctx = RequestContext::default();
    let pw = || Zeroizing::new(password.to_string());

    // The password is not in the catalog in clear, and the handle is all the
    // browser gets.
    let handle = v.begin_login("kees", pw()).await.unwrap();
    assert!(handle.len() >= 40 && !handle.contains(password));
    // (An UPDATE that changes nothing counts the rows that match.)
    let vr = &v;
    let rows = |w: String| async move {
        let sql = format!("UPDATE login_steps SET expires_at = expires_at WHERE {w}");
        vr.catalog_for_tests().execute_raw_for_tests(&sql).await.unwrap()
    };
    assert_eq!(rows(format!("handle_hash = '{handle}'")).await, 0, "the handle itself is not stored");
    let hash = vault::credentials::token_hash(&handle);
    assert_eq!(rows(format!("handle_hash = '{hash}' AND username = 'kees'")).await, 1, "its hash is");

    // Right code: signed in; the same handle again: unknown (used once).
    let s = v.finish_login(&handle, code(&kees.totp_secret, clock.now()), &ctx).await.unwrap();
    assert_eq!(s.user.username, "kees");
    clock.set(start + Duration::seconds(31));
    let again = v.finish_login(&handle, code(&kees.totp_secret, clock.now()), &ctx).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::InvalidCredentials);

    // A wrong code uses the step up too.
    let handle = v.begin_login("kees", pw()).await.unwrap();
    let wrong = v.finish_login(&handle, "000000".into(), &ctx).await.unwrap_err();
    assert_eq!(wrong.code, ErrorCode::InvalidCredentials);
    clock.set(start + Duration::seconds(62));
    let gone = v.finish_login(&handle, code(&kees.totp_secret, clock.now()), &ctx).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::InvalidCredentials);

    // Five minutes and a second later it has expired, and says so.
    let handle = v.begin_login("kees", pw()).await.unwrap();
    clock.set(start + Duration::seconds(62 + 301));
    let late = v.finish_login(&handle, code(&kees.totp_secret, clock.now()), &ctx).await.unwrap_err();
    assert_eq!(late.code, ErrorCode::LoginStepExpired);

    // Abandoned steps are swept after their deadline, not before.
    v.begin_login("kees", pw()).await.unwrap();
    v.begin_login("niemand", pw()).await.unwrap();
    assert_eq!(v.prune_login_steps().await.unwrap(), 0);
    clock.set(start + Duration::seconds(62 + 301 + 301));
    assert_eq!(v.prune_login_steps().await.unwrap(), 2);
}

on_both_backends!(the_first_sign_in_step_is_kept_server_side_used_once_and_expires, steps);
