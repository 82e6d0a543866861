//! Certification bodies and their accreditation.

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, NaiveDate, Utc};
use entities::orm::{certification_body, prelude::*};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::Target;
use engine::access::Action;
use engine::lifecycle::accredited_on;
use engine::store::{Contacts, check_version, contacts_for};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{Page, PageQuery, decode_cursor, id_page, limit_of, page_of};
use crate::preconditions::expected_version;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config
        .service(create_certification_body)
        .service(list_certification_bodies)
        .service(get_certification_body)
        .service(update_certification_body);
}

/// A certification body as clients send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Trusted Certification Ltd",
    "accredited": true,
    "accreditation_body": "UKAS",
    "accreditation_expires_on": "2028-06-30",
    "coordinator_email": "coordinator@trusted-cb.example"
}))]
pub struct CertificationBodyRequest {
    /// Name.
    pub name: String,
    /// Accredited for ISO/IEC 27001 (ISO/IEC 27006) by an IAF MLA member.
    pub accredited: bool,
    /// The accreditation body, e.g. UKAS or ANAB.
    pub accreditation_body: Option<String>,
    /// When the accreditation expires.
    pub accreditation_expires_on: Option<NaiveDate>,
    /// The CB's coordinator: reminders and escalations.
    pub coordinator_email: String,
    /// On an update: the version last read; the write is refused (412) if it changed. `If-Match`
    /// says the same.
    #[serde(default)]
    pub version: Option<i32>,
}

/// A certification body.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificationBodyView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Accredited (as recorded).
    pub accredited: bool,
    /// Accredited today: recorded as accredited and not past its accreditation's expiry.
    pub accredited_today: bool,
    /// The accreditation body.
    pub accreditation_body: Option<String>,
    /// When the accreditation expires.
    pub accreditation_expires_on: Option<NaiveDate>,
    /// Coordinator: shown to the body's own people, the platform's admins, and the organizations
    /// that selected the body for an engagement; null for everyone else.
    pub coordinator_email: Option<String>,
    /// Version, for `If-Match`.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl CertificationBodyView {
    fn new(m: certification_body::Model, today: NaiveDate, contacts: &Contacts) -> Self {
        Self {
            id: m.id,
            accredited_today: accredited_on(&m, today),
            coordinator_email: contacts.shows(m.id).then_some(m.coordinator_email),
            name: m.name,
            accredited: m.accredited,
            accreditation_body: m.accreditation_body,
            accreditation_expires_on: m.accreditation_expires_on,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn set_fields(model: &mut certification_body::ActiveModel, request: CertificationBodyRequest) -> Result<(), ApiError> {
    let mut f = Fields::default();
    let name = f.line::<200>("name", &request.name);
    let accreditation_body = f.optional_line::<200>("accreditation_body", request.accreditation_body.as_deref());
    let expires = request.accreditation_expires_on.map(|d| f.date("accreditation_expires_on", d));
    let coordinator = f.email("coordinator_email", &request.coordinator_email);
    let parsed = (|| Some((name?, accreditation_body?, coordinator?)))();
    let (name, accreditation_body, coordinator) = f.finish(parsed)?;
    model.name = Set(name.into_inner());
    model.accredited = Set(request.accredited);
    model.accreditation_body = Set(accreditation_body.map(|b| b.into_inner()));
    model.accreditation_expires_on = Set(expires.flatten());
    model.coordinator_email = Set(coordinator.to_string());
    Ok(())
}

/// Registers a certification body.
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "create_certification_body",
    request_body = CertificationBodyRequest,
    responses(
        (status = 201, description = "Created", body = CertificationBodyView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/certification-bodies")]
pub async fn create_certification_body(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    body: web::Json<CertificationBodyRequest>,
) -> Result<HttpResponse, ApiError> {
    user.may(Action::CreateCertificationBody)?;
    let mut model = certification_body::ActiveModel { id: Set(Uuid::now_v7()), version: Set(1), ..Default::default() };
    set_fields(&mut model, body.into_inner())?;
    let write = app.begin(&user, Target::Platform, Action::CreateCertificationBody, claim.claim()).await?;
    let now = write.now();
    model.created_at = Set(now);
    model.updated_at = Set(now);
    let created = model.insert(write.txn()).await?;
    commit(write, HttpResponse::Created().json(CertificationBodyView::new(created, now.date_naive(), &Contacts::All)))
        .await
}

/// Lists certification bodies, oldest first.
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "list_certification_bodies",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of certification bodies", body = Page<CertificationBodyView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/certification-bodies")]
pub async fn list_certification_bodies(
    app: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<CertificationBodyView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let select = id_page(CertificationBody::find(), certification_body::Column::Id, cursor, limit);
    let today = app.clock.today();
    let rows = select.all(&app.db).await?;
    let contacts = contacts_for(&app.db, &user).await?;
    Ok(web::Json(page_of(rows, limit, |r| r.id, |r| CertificationBodyView::new(r, today, &contacts))))
}

/// One certification body.
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "get_certification_body",
    params(("id" = Uuid, Path, description = "Certification body id")),
    responses(
        (status = 200, description = "The certification body", body = CertificationBodyView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/certification-bodies/{id}")]
pub async fn get_certification_body(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<CertificationBodyView>, ApiError> {
    let found =
        CertificationBody::find_by_id(*id).one(&app.db).await?.ok_or(ApiError::not_found("certification body"))?;
    let contacts = contacts_for(&app.db, &user).await?;
    Ok(web::Json(CertificationBodyView::new(found, app.clock.today(), &contacts)))
}

/// Replaces a certification body's details; `If-Match: "<version>"` guards against lost updates.
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "update_certification_body",
    params(("id" = Uuid, Path, description = "Certification body id"), ("If-Match" = Option<String>, Header, description = "The version last read")),
    request_body = CertificationBodyRequest,
    responses(
        (status = 200, description = "Updated", body = CertificationBodyView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/certification-bodies/{id}")]
pub async fn update_certification_body(
    app: web::Data<AppState>,
    user: AuthUser,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<CertificationBodyRequest>,
) -> Result<HttpResponse, ApiError> {
    let expected = expected_version(&request, body.version)?;
    let write = app.begin(&user, Target::CertificationBody(*id), Action::UpdateCertificationBody, None).await?;
    let found = CertificationBody::find_by_id(*id)
        .lock_exclusive()
        .one(write.txn())
        .await?
        .ok_or(ApiError::not_found("certification body"))?;
    check_version(expected, found.version)?;
    let version = found.version;
    let accreditation = |m: &certification_body::ActiveModel| {
        (
            m.accredited.clone().unwrap(),
            m.accreditation_body.clone().unwrap(),
            m.accreditation_expires_on.clone().unwrap(),
        )
    };
    let mut model = found.into_active_model();
    let recorded = accreditation(&model);
    set_fields(&mut model, body.into_inner())?;
    if accreditation(&model) != recorded {
        user.may(Action::RecordAccreditation)?;
    }
    model.version = Set(version + 1);
    let now = write.now();
    model.updated_at = Set(now);
    let updated = model.update(write.txn()).await?;
    commit(write, HttpResponse::Ok().json(CertificationBodyView::new(updated, now.date_naive(), &Contacts::All))).await
}
