//! Bearer-token authentication: HS256 JWTs checked for signature, `exp`, `nbf`, `iss` and `aud`.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use anyhow::Context;
use entities::settings::Settings;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::revocations::RevocationList;
use engine::Caller;
use engine::access::{Party, Tenancy};

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
    /// Issuer: must be `JWT_ISSUER`.
    pub iss: String,
    /// Audience: must be `JWT_AUDIENCE`.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// The token's id (every minted token has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Keys and rules for signing and checking tokens, built once from the settings.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    hs256: (DecodingKey, Validation),
    rs256: Option<(DecodingKey, Validation)>,
    issuer: String,
    audience: String,
    /// The longest a person's token may live, in seconds.
    max_lifetime: i64,
    /// The longest a service account's token may live, in seconds.
    max_service_lifetime: i64,
    /// The claims of tokens verified before, by their text (see [`TokenKeys::verify`]).
    verified: Arc<Mutex<HashMap<String, Claims>>>,
}

/// The most verified tokens kept; when full, the cache starts again empty.
const MOST_VERIFIED: usize = 1024;

/// Seconds of leeway for a clock behind or ahead of the token's issuer.
const LEEWAY: u64 = 30;

fn validation(algorithm: Algorithm, settings: &Settings) -> Validation {
    // One algorithm per key: a token cannot pick another (no `none`, no HS256 signed with the
    // RSA public key).
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[&settings.jwt_issuer]);
    validation.set_audience(&[&settings.jwt_audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = LEEWAY;
    validation
}

impl TokenKeys {
    /// From the configured secret, issuer and audience, and the RSA public key if one is set.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let secret = settings.jwt_secret_bytes();
        let rs256 = match &settings.jwt_public_key_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("Failed to read JWT_PUBLIC_KEY_FILE {}", path.display()))?;
                let key = DecodingKey::from_rsa_pem(&pem)
                    .with_context(|| format!("JWT_PUBLIC_KEY_FILE {} is not a PEM RSA public key", path.display()))?;
                Some((key, validation(Algorithm::RS256, settings)))
            }
            None => None,
        };
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            hs256: (DecodingKey::from_secret(secret), validation(Algorithm::HS256, settings)),
            rs256,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            max_lifetime: i64::from(settings.jwt_max_lifetime_hours) * 3600,
            max_service_lifetime: i64::from(settings.jwt_max_service_lifetime_hours) * 3600,
            verified: Arc::default(),
        })
    }

    /// The longest any token may live: a revocation is kept that long.
    pub fn longest_lifetime(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.max_lifetime.max(self.max_service_lifetime))
    }

    /// The longest a token of `role` may live, in seconds.
    fn max_lifetime_of(&self, role: Role) -> i64 {
        match role {
            Role::Integration => self.max_service_lifetime,
            _ => self.max_lifetime,
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
        let max = self.max_lifetime_of(role);
        anyhow::ensure!(
            ttl.num_seconds() <= max,
            "a {role:?} token lives at most {} hours (JWT_MAX_LIFETIME_HOURS, JWT_MAX_SERVICE_LIFETIME_HOURS for integrations)",
            max / 3600
        );
        let claims = Claims {
            jti: Some(Uuid::now_v7().to_string()),
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
        anyhow::ensure!(AuthUser::from_claims(claims.clone()).is_some(), "{}", scope_rule(role));
        Ok(encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// Checks `token` with the key of the algorithm its header names, and returns its claims.
    ///
    /// A client sends the same token with every request: checking its signature, decoding its
    /// header and claims was a twentieth of a transition's instructions in the API (callgrind,
    /// docs/benchmarks.md). So the claims of a token that passed are kept by its exact text, and
    /// only the checks that depend on the time (expiry, not before, issued at) are made again.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        self.verify_at(token, chrono::Utc::now().timestamp())
    }

    /// [`TokenKeys::verify`] at `now` (seconds since the epoch).
    fn verify_at(&self, token: &str, now: i64) -> Result<Claims, jsonwebtoken::errors::Error> {
        let known = self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned();
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims = self.check_signed(token)?;
                let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
                if verified.len() >= MOST_VERIFIED {
                    verified.clear();
                }
                verified.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        check_times(&claims, now)?;
        Ok(claims)
    }

    /// What holds of `token` whenever it is checked: its signature, its issuer and audience, the
    /// claims it must carry, and a lifetime its role allows.
    fn check_signed(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token)?;
        let (key, validation) = match header.alg {
            Algorithm::HS256 => &self.hs256,
            Algorithm::RS256 => self.rs256.as_ref().ok_or(ErrorKind::InvalidAlgorithm)?,
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        let claims = decode::<Claims>(token, key, validation)?.claims;
        // Living no longer than its role allows.
        if claims.exp - claims.iat > self.max_lifetime_of(claims.role) {
            tracing::debug!(lifetime = claims.exp - claims.iat, "bearer token refused: it lives too long");
            return Err(ErrorKind::InvalidToken.into());
        }
        Ok(claims)
    }
}

/// What holds of a token's claims only for a while: not expired, valid already (`nbf`), and issued
/// when it says (not in the future), each with [`LEEWAY`], as `jsonwebtoken` checks expiry and
/// `nbf`.
fn check_times(claims: &Claims, now: i64) -> Result<(), jsonwebtoken::errors::Error> {
    use jsonwebtoken::errors::ErrorKind;
    let leeway = LEEWAY as i64;
    if claims.exp < now - leeway {
        return Err(ErrorKind::ExpiredSignature.into());
    }
    if claims.nbf > now + leeway {
        return Err(ErrorKind::ImmatureSignature.into());
    }
    if claims.iat > now + leeway {
        tracing::debug!(iat = claims.iat, "bearer token refused: issued in the future");
        return Err(ErrorKind::ImmatureSignature.into());
    }
    Ok(())
}

/// The scope each role needs in its token.
pub fn scope_rule(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin token carries neither org_id nor cb_id",
        Role::Coordinator | Role::Auditor | Role::DecisionMaker => "a certification body's role needs cb_id (only)",
        Role::ClientManager => "a client manager needs org_id (only)",
        Role::Integration => "an integration needs exactly one scope: org_id or cb_id",
    }
}

/// An authenticated caller: the engine's [`Caller`], taken from a verified bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub Caller);

impl AuthUser {
    /// The caller a verified token names, or `None` when its role and scopes do not fit.
    pub fn from_claims(claims: Claims) -> Option<Self> {
        let (party, tenancy) = match (claims.role, claims.org_id, claims.cb_id) {
            (Role::Admin, None, None) => (Party::Admin, Tenancy::Platform),
            (Role::Coordinator, None, Some(cb)) => (Party::Coordinator, Tenancy::CertificationBody(cb)),
            (Role::Auditor, None, Some(cb)) => (Party::Auditor, Tenancy::CertificationBody(cb)),
            (Role::DecisionMaker, None, Some(cb)) => (Party::DecisionMaker, Tenancy::CertificationBody(cb)),
            (Role::ClientManager, Some(org), None) => (Party::ClientManager, Tenancy::Organization(org)),
            (Role::Integration, Some(org), None) => (Party::ClientIntegration, Tenancy::Organization(org)),
            (Role::Integration, None, Some(cb)) => {
                (Party::CertificationBodyIntegration, Tenancy::CertificationBody(cb))
            }
            _ => return None,
        };
        Some(Self(Caller { subject: claims.sub, party, tenancy }))
    }
}

impl std::ops::Deref for AuthUser {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

/// The caller a middleware already authenticated (`None`: no valid token), kept in the request's
/// extensions so a token is checked once per request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Option<AuthUser>);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let known = request.extensions().get::<Authenticated>().map(|known| known.0.clone());
        ready(match known {
            Some(Some(user)) => Ok(user),
            Some(None) => Err(ApiError::Unauthorized),
            None => authenticate(request),
        })
    }
}

/// The caller of `request`: its bearer token verified (signature, claims, lifetime), not revoked,
/// and its scope fitting its role.
pub fn authenticate(request: &HttpRequest) -> Result<AuthUser, ApiError> {
    let keys = request
        .app_data::<web::Data<TokenKeys>>()
        .ok_or_else(|| ApiError::unexpected(anyhow::anyhow!("BUG: TokenKeys was not added to the app")))?;
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
    if request
        .app_data::<web::Data<RevocationList>>()
        .is_some_and(|revoked| revoked.covers(claims.jti.as_deref(), &claims.sub, claims.iat))
    {
        tracing::debug!(sub = %claims.sub, jti = ?claims.jti, "bearer token refused: revoked");
        return Err(ApiError::Unauthorized);
    }
    let role = claims.role;
    AuthUser::from_claims(claims).ok_or_else(|| {
        tracing::debug!(rule = scope_rule(role), "bearer token refused: its scope does not fit its role");
        ApiError::Unauthorized
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_settings(&Settings::from_vars(Vec::new()).unwrap()).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_and_a_tampered_or_expired_one_does_not() {
        let keys = keys();
        let now = chrono::Utc::now();
        let cb = Some(Uuid::now_v7());
        let token = keys.mint("ana@cb.test", Role::Coordinator, None, cb, now, chrono::Duration::hours(1)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().role, Role::Coordinator);

        let mut tampered = token.clone();
        tampered.pop();
        assert!(keys.verify(&tampered).is_err());

        let old = keys
            .mint("ana@cb.test", Role::Admin, None, None, now - chrono::Duration::hours(3), chrono::Duration::hours(1))
            .unwrap();
        assert!(keys.verify(&old).is_err());
    }

    #[test]
    fn a_token_verified_before_is_still_refused_once_it_expires_or_before_it_is_valid() {
        let keys = keys();
        let now = chrono::Utc::now();
        let hour = chrono::Duration::hours(1);
        let token = keys.mint("ana@cb.test", Role::Admin, None, None, now, hour).unwrap();
        let at = now.timestamp();
        assert!(keys.verify_at(&token, at).is_ok());
        assert!(keys.verified.lock().unwrap().contains_key(&token), "kept once verified");

        // Past its expiry (beyond the leeway) and before its start, the kept claims are refused.
        let expired = keys.verify_at(&token, at + 3600 + LEEWAY as i64 + 1).unwrap_err();
        assert_eq!(expired.kind(), &jsonwebtoken::errors::ErrorKind::ExpiredSignature);
        let early = keys.verify_at(&token, at - LEEWAY as i64 - 1).unwrap_err();
        assert_eq!(early.kind(), &jsonwebtoken::errors::ErrorKind::ImmatureSignature);
        assert!(keys.verify_at(&token, at + 3600 + LEEWAY as i64).is_ok(), "within the leeway");

        // A token one character off is checked in full, not taken for the one kept.
        let mut tampered = token.clone();
        tampered.pop();
        assert!(keys.verify_at(&tampered, at).is_err());
        assert!(!keys.verified.lock().unwrap().contains_key(&tampered), "a refused token is not kept");
    }

    #[test]
    fn a_token_lives_at_most_its_role_s_maximum_and_each_minted_one_has_an_id() {
        let keys = keys();
        let now = chrono::Utc::now();
        let cb = Some(Uuid::now_v7());
        let century = chrono::Duration::days(36_500);
        let refused = keys.mint("root", Role::Admin, None, None, now, century).unwrap_err();
        assert!(refused.to_string().contains("at most 12 hours"), "{refused}");
        assert!(keys.mint("ana@cb.test", Role::Coordinator, None, cb, now, chrono::Duration::hours(13)).is_err());
        let twelve = keys.mint("ana@cb.test", Role::Coordinator, None, cb, now, chrono::Duration::hours(12)).unwrap();
        let other = keys.mint("ana@cb.test", Role::Coordinator, None, cb, now, chrono::Duration::hours(12)).unwrap();
        let (first, second) = (keys.verify(&twelve).unwrap(), keys.verify(&other).unwrap());
        assert!(first.jti.is_some() && first.jti != second.jti, "every minted token has its own id");

        // A service account may be given a longer, explicit maximum.
        let vars = [("JWT_MAX_SERVICE_LIFETIME_HOURS".to_owned(), "720".to_owned())];
        let service = TokenKeys::from_settings(&Settings::from_vars(vars).unwrap()).unwrap();
        let month = chrono::Duration::days(30);
        assert!(service.mint("grc-sync", Role::Integration, None, cb, now, month).is_ok());
        assert!(service.mint("ana@cb.test", Role::Coordinator, None, cb, now, month).is_err(), "not a person's");
    }
}
