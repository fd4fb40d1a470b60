//! The library vault in tests: its configuration on a backend and a
//! signed-in caller (the same steps a person takes: created by the
//! operator, password and authenticator code, then the session's token).
#![allow(dead_code)]

use vault::domain::Role;
use vault::service::{By, Caller, NewUser, RequestContext};
use vault::{MasterKeySource, Vault, VaultConfig};

use super::support::Backend;

pub const PASSWORD: &str = "correct horse battery staple";

/// The vault on `b`, with its master key in the backend's temp dir.
pub fn config(b: &Backend) -> VaultConfig {
    VaultConfig {
        database_url: b.database_url.clone(),
        storage_url: b.storage_url.clone(),
        s3: vault::store::S3Settings { endpoint: b.s3_endpoint.clone(), ..vault::store::S3Settings::from_env() },
        master_key: MasterKeySource::File { path: b.dir.path().join("master.key"), create_if_missing: true },
    }
}

/// A user created by the operator and signed in.
pub async fn signed_in(v: &Vault, username: &str, role: Role) -> Caller {
    let created = v
        .create_user(
            By::Operator,
            NewUser { username: username.into(), display_name: None, role, password: PASSWORD.to_string().into() },
        )
        .await
        .unwrap();
    let secret = totp_rs::Secret::try_from_base32(&created.totp_secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).with_skew(1).build().unwrap();
    // The code of the vault's own clock (a test may have set it anywhere).
    let otp = totp.generate(v.now().timestamp() as u64).to_string();
    let req =
        serde_json::from_value(serde_json::json!({ "username": username, "password": PASSWORD, "otp": otp })).unwrap();
    let session = v.login(req, &RequestContext::default()).await.unwrap();
    v.authenticate(&session.token, RequestContext::default()).await.unwrap()
}
