//! Bearer-token authentication: HS256 JWTs checked for signature, `exp`, `nbf`, `iss` and `aud`.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use entities::settings::Settings;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// The roles a caller can hold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, strum::Display, strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Runs the platform.
    Admin,
    /// A certification body's coordinator.
    Coordinator,
    /// A certification body's auditor.
    Auditor,
    /// A certification body's decision panel member.
    DecisionMaker,
    /// An organization's ISMS or engagement manager.
    ClientManager,
    /// A service account with an explicit scope.
    Integration,
}

/// The claims of a certflow token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The caller: a person's email or a service account's name.
    pub sub: String,
    /// The caller's role.
    pub role: Role,
    /// The organization the caller belongs to (clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    /// The certification body the caller belongs to (CB staff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cb_id: Option<Uuid>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
}

/// Keys and rules for signing and checking tokens, built once from the settings.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl TokenKeys {
    /// From the configured secret, issuer and audience.
    pub fn from_settings(settings: &Settings) -> Self {
        let secret = settings.jwt_secret_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
        }
    }

    /// Mints a token for `sub` with `role` and scopes, valid for `ttl` from `now`.
    pub fn mint(
        &self,
        sub: &str,
        role: Role,
        org_id: Option<Uuid>,
        cb_id: Option<Uuid>,
        now: chrono::DateTime<chrono::Utc>,
        ttl: chrono::Duration,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            org_id,
            cb_id,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        Ok(encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// Checks `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// Who: recorded as the actor in the history.
    pub subject: String,
    /// The caller's role.
    pub role: Role,
    /// Organization scope.
    pub org_id: Option<Uuid>,
    /// Certification-body scope.
    pub cb_id: Option<Uuid>,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request))
    }
}

fn authenticate(request: &HttpRequest) -> Result<AuthUser, ApiError> {
    let keys = request
        .app_data::<web::Data<TokenKeys>>()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("BUG: TokenKeys was not added to the app")))?;
    let header = request.headers().get(actix_web::http::header::AUTHORIZATION).ok_or_else(|| {
        tracing::debug!("no Authorization header");
        ApiError::Unauthorized
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .ok_or_else(|| {
            tracing::debug!("Authorization header is not a bearer token");
            ApiError::Unauthorized
        })?;
    let claims = keys.verify(token.trim()).map_err(|error| {
        tracing::debug!(%error, "bearer token refused");
        ApiError::Unauthorized
    })?;
    Ok(AuthUser { subject: claims.sub, role: claims.role, org_id: claims.org_id, cb_id: claims.cb_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_settings(&Settings::from_vars(Vec::new()).unwrap())
    }

    #[test]
    fn a_minted_token_verifies_and_a_tampered_or_expired_one_does_not() {
        let keys = keys();
        let now = chrono::Utc::now();
        let token = keys.mint("ana@cb.test", Role::Coordinator, None, None, now, chrono::Duration::hours(1)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().role, Role::Coordinator);

        let mut tampered = token.clone();
        tampered.pop();
        assert!(keys.verify(&tampered).is_err());

        let old = keys
            .mint("ana@cb.test", Role::Admin, None, None, now - chrono::Duration::hours(3), chrono::Duration::hours(1))
            .unwrap();
        assert!(keys.verify(&old).is_err());
    }
}
