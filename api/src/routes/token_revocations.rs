//! Token revocation: an admin kills one token (by its `jti`) or every token of a subject issued up
//! to an instant. Every API process refuses a revoked token within `TOKEN_REVOCATION_REFRESH_SECONDS`
//! (the one that recorded it, at once).

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use entities::domain::revocation::Revocation;
use entities::orm::{prelude::*, token_revocation};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::access::Action;
use engine::revocations::revocation_of;

use crate::auth::{AuthUser, TokenKeys};
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{Page, PageQuery, decode_cursor, id_page, limit_of, page_of};
use crate::revocations::RevocationList;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(revoke_tokens).service(list_token_revocations);
}

/// What to revoke: one token by its id, or a subject's tokens issued up to an instant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "subject": "ana@cb.example",
    "reason": "laptop stolen"
}))]
pub struct TokenRevocationRequest {
    /// The token's `jti` (every token `certflow token` mints has one). Exclusive with `subject`.
    #[serde(default)]
    pub token_id: Option<String>,
    /// The tokens' `sub`: every token of it issued at or before `issued_before` (tokens issued in
    /// the same second included) is refused. Exclusive with `token_id`.
    #[serde(default)]
    pub subject: Option<String>,
    /// With `subject`: the instant (default: now). Not in the future.
    #[serde(default)]
    pub issued_before: Option<DateTime<Utc>>,
    /// Why (kept with the revocation).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRevocationView {
    /// Id.
    pub id: Uuid,
    /// The revoked token's `jti` (a revocation by id).
    pub token_id: Option<String>,
    /// The subject whose tokens are revoked (a revocation by subject).
    pub subject: Option<String>,
    /// With `subject`: tokens issued at or before this instant are refused.
    pub issued_before: Option<DateTime<Utc>>,
    /// Why.
    pub reason: Option<String>,
    /// The admin who revoked.
    pub revoked_by: String,
    /// When.
    pub revoked_at: DateTime<Utc>,
    /// Kept until then: every token it covers has expired by that time.
    pub keep_until: DateTime<Utc>,
}

impl From<token_revocation::Model> for TokenRevocationView {
    fn from(m: token_revocation::Model) -> Self {
        Self {
            id: m.id,
            token_id: m.token_id,
            subject: m.subject,
            issued_before: m.issued_before,
            reason: m.reason,
            revoked_by: m.revoked_by,
            revoked_at: m.revoked_at,
            keep_until: m.keep_until,
        }
    }
}

impl TokenRevocationRequest {
    fn parse(self, now: DateTime<Utc>) -> Result<(Revocation, Option<String>), ApiError> {
        let mut f = Fields::default();
        let reason = f.optional_text::<2000>("reason", self.reason.as_deref());
        let revocation = match (self.token_id, self.subject, self.issued_before) {
            (Some(id), None, None) => {
                f.line::<200>("token_id", &id).map(|id| Revocation::Token { id: id.into_inner() })
            }
            (None, Some(subject), issued_before) => f.line::<320>("subject", &subject).map(|subject| {
                Revocation::Subject { subject: subject.into_inner(), issued_before: issued_before.unwrap_or(now) }
            }),
            (Some(_), None, Some(_)) => {
                f.problem("issued_before", "goes with subject, not with token_id");
                None
            }
            (Some(_), Some(_), _) => {
                f.problem("token_id", "give token_id or subject, not both");
                None
            }
            (None, None, _) => {
                f.problem("token_id", "give token_id (one token) or subject (its tokens issued up to an instant)");
                None
            }
        };
        let parsed = (|| Some((revocation?, reason?)))();
        let (revocation, reason) = f.finish(parsed)?;
        Ok((revocation, reason.map(|r| r.into_inner())))
    }
}

/// Revokes a token or a subject's tokens (admins only).
#[utoipa::path(
    tag = "tokens",
    operation_id = "revoke_tokens",
    request_body = TokenRevocationRequest,
    responses(
        (status = 201, description = "Revoked: refused at once by this process, by every other within TOKEN_REVOCATION_REFRESH_SECONDS", body = TokenRevocationView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/token-revocations")]
pub async fn revoke_tokens(
    app: web::Data<AppState>,
    keys: web::Data<TokenKeys>,
    revoked: web::Data<RevocationList>,
    user: AuthUser,
    claim: IdempotencyClaim,
    body: web::Json<TokenRevocationRequest>,
) -> Result<HttpResponse, ApiError> {
    user.may(Action::RevokeTokens)?;
    // Tokens run on the wall clock (their `iat` and `exp`), not on the engine's.
    let now = Utc::now();
    let (revocation, reason) = body.into_inner().parse(now)?;
    let (write, row) =
        app.revoke_tokens(&user, &revocation, reason, keys.longest_lifetime(), now, claim.claim()).await?;
    let response = commit(write, HttpResponse::Created().json(TokenRevocationView::from(row.clone()))).await?;
    if let Some(revocation) = revocation_of(&row) {
        revoked.add(revocation);
    }
    Ok(response)
}

/// The revocations still in force, oldest first (admins only).
#[utoipa::path(
    tag = "tokens",
    operation_id = "list_token_revocations",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of revocations", body = Page<TokenRevocationView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/token-revocations")]
pub async fn list_token_revocations(
    app: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<TokenRevocationView>>, ApiError> {
    user.may(Action::RevokeTokens)?;
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let select = TokenRevocation::find().filter(token_revocation::Column::KeepUntil.gt(Utc::now()));
    let rows = id_page(select, token_revocation::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(rows, limit, |r| r.id, TokenRevocationView::from)))
}
