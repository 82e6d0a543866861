//! Certificates: the engagement's certificate, and the public verification by number.

use actix_web::{get, web};
use chrono::NaiveDate;
use entities::domain::{CertificateStatus, StandardVersion};
use entities::orm::{certificate, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::lifecycle::{accredited_on, find_certificate};
use engine::store::find_engagement_records;

use crate::auth::AuthUser;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(get_engagement_certificate).service(verify_certificate);
}

/// A certificate.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// Id.
    pub id: Uuid,
    /// The engagement.
    pub engagement_id: Uuid,
    /// The certificate number.
    pub number: String,
    /// The certified scope.
    pub scope: String,
    /// The organization's legal name as the certificate states it (fixed at the decision).
    pub organization_name: Option<String>,
    /// The certification body's name as the certificate states it (fixed at the decision).
    pub certification_body_name: Option<String>,
    /// Its accreditation body as the certificate states it (fixed at the decision).
    pub accreditation_body: Option<String>,
    /// The standard.
    pub standard: StandardVersion,
    /// The first certification's date, kept through every renewal.
    pub first_issued_on: Option<NaiveDate>,
    /// Issued (the latest decision's date).
    pub issued_on: NaiveDate,
    /// Expires (3 years; renewed terms run from the previous expiry).
    pub expires_on: NaiveDate,
    /// Status, in the IAF CertSearch vocabulary.
    pub status: CertificateStatus,
    /// Surveillance audits completed in the current cycle.
    pub surveillances_completed: i32,
    /// The last day of the latest of them: the next is due by the end of the following year.
    pub last_surveillance_on: Option<NaiveDate>,
}

impl From<certificate::Model> for CertificateView {
    fn from(m: certificate::Model) -> Self {
        Self {
            id: m.id,
            engagement_id: m.engagement_id,
            number: m.number,
            scope: m.scope,
            organization_name: m.organization_name,
            certification_body_name: m.certification_body_name,
            accreditation_body: m.accreditation_body,
            standard: m.standard,
            first_issued_on: m.first_issued_on,
            issued_on: m.issued_on,
            expires_on: m.expires_on,
            status: m.status,
            surveillances_completed: m.surveillances_completed,
            last_surveillance_on: m.last_surveillance_on,
        }
    }
}

/// What anyone may learn about a certificate from its number.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateVerification {
    /// The certificate number.
    pub number: String,
    /// Active, suspended, withdrawn, expired or cancelled.
    pub status: CertificateStatus,
    /// Valid today: active and not past its expiry.
    pub valid: bool,
    /// The certified organization, as the certificate states it.
    pub organization: String,
    /// The certified scope.
    pub scope: String,
    /// The standard.
    pub standard: StandardVersion,
    /// The first certification's date.
    pub first_issued_on: NaiveDate,
    /// Issued (the latest decision).
    pub issued_on: NaiveDate,
    /// Expires.
    pub expires_on: NaiveDate,
    /// The certification body, as the certificate states it.
    pub certification_body: String,
    /// The certification body is accredited today.
    pub accredited: bool,
    /// Its accreditation body, as the certificate states it.
    pub accreditation_body: Option<String>,
}

/// The engagement's certificate.
#[utoipa::path(
    tag = "certificates",
    operation_id = "get_engagement_certificate",
    params(("id" = Uuid, Path, description = "Engagement id")),
    responses(
        (status = 200, description = "The certificate", body = CertificateView),
        (status = "4XX", description = "Refused (404 before one is issued)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/certificate")]
pub async fn get_engagement_certificate(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<CertificateView>, ApiError> {
    find_engagement_records(&app.db, &user, *id).await?;
    let found = find_certificate(&app.db, *id).await?.ok_or(ApiError::not_found("certificate"))?;
    Ok(web::Json(found.into()))
}

/// Public verification of a certificate by its number: no login needed.
#[utoipa::path(
    tag = "certificates",
    operation_id = "verify_certificate",
    params(("number" = String, Path, description = "Certificate number")),
    responses(
        (status = 200, description = "The certificate's public record", body = CertificateVerification),
        (status = "4XX", description = "Unknown number", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/certificates/{number}/verification")]
pub async fn verify_certificate(
    app: web::Data<AppState>,
    number: web::Path<String>,
) -> Result<web::Json<CertificateVerification>, ApiError> {
    Ok(web::Json(verification_of(&app, number.into_inner()).await?))
}

/// The public record of certificate `number` (the API's verification and the public page).
pub async fn verification_of(app: &AppState, number: String) -> Result<CertificateVerification, ApiError> {
    // No number this API issues is longer or holds a control character (PostgreSQL refuses NUL).
    if number.len() > 64 || number.chars().any(char::is_control) {
        return Err(ApiError::not_found("certificate"));
    }
    let found = Certificate::find()
        .filter(certificate::Column::Number.eq(number))
        .one(&app.db)
        .await?
        .ok_or(ApiError::not_found("certificate"))?;
    let engagement =
        Engagement::find_by_id(found.engagement_id).one(&app.db).await?.ok_or(ApiError::not_found("certificate"))?;
    let organization = Organization::find_by_id(engagement.organization_id)
        .one(&app.db)
        .await?
        .ok_or(ApiError::not_found("organization"))?;
    let cb = match engagement.certification_body_id {
        Some(cb_id) => CertificationBody::find_by_id(cb_id).one(&app.db).await?,
        None => None,
    };
    let today = app.clock.today();
    // What the certificate states, as fixed at its decision; a certificate granted before these
    // were kept falls back to the records. Accreditation is today's fact, not the certificate's.
    let accredited = cb.as_ref().is_some_and(|cb| accredited_on(cb, today));
    let certification_body = found.certification_body_name.or_else(|| cb.as_ref().map(|cb| cb.name.clone()));
    let accreditation_body = match found.organization_name {
        Some(_) => found.accreditation_body,
        None => cb.and_then(|cb| cb.accreditation_body),
    };
    Ok(CertificateVerification {
        valid: found.status == CertificateStatus::Active && found.expires_on >= today,
        number: found.number,
        status: found.status,
        organization: found.organization_name.unwrap_or(organization.legal_name),
        scope: found.scope,
        standard: found.standard,
        first_issued_on: found.first_issued_on.unwrap_or(found.issued_on),
        issued_on: found.issued_on,
        expires_on: found.expires_on,
        certification_body: certification_body.unwrap_or_default(),
        accredited,
        accreditation_body,
    })
}
