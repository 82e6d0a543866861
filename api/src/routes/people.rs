//! The directory of people: who signs in to the console, in which role, for whom. Managed by the
//! admins, by a certification body's coordinators for its people, and by an organization's client
//! managers for its own; read by everyone of the same body or organization.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use entities::domain::people::{PersonRole, PersonScope};
use entities::orm::{person, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::people::{PersonDetails, people_in, scope_of};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{Page, decode_cursor, id_page, limit_of, page_of};
use crate::preconditions::expected_version;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(add_person).service(list_people).service(get_person).service(change_person).service(remove_person);
}

/// A person of the directory, as added or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "ana@cb.example",
    "name": "Ana Auditor",
    "role": "auditor",
    "certification_body_id": "0193a5b0-7c1e-7000-8000-000000000001"
}))]
pub struct PersonRequest {
    /// Their address: how they sign in and whom certflow's emails reach (one person per address).
    pub email: String,
    /// Their name, as shown.
    pub name: String,
    /// What they do: `admin` (no scope), `coordinator`, `auditor` or `decision_maker` (a
    /// certification body's), `client_manager` (an organization's).
    pub role: PersonRole,
    /// The organization of a client manager.
    #[serde(default)]
    pub organization_id: Option<Uuid>,
    /// The certification body of a coordinator, auditor or decision maker.
    #[serde(default)]
    pub certification_body_id: Option<Uuid>,
    /// On a replacement: the version last read; refused (412) if it changed. `If-Match` works too.
    #[serde(default)]
    pub version: Option<i32>,
}

impl PersonRequest {
    fn parse(self) -> Result<(PersonDetails, Option<i32>), ApiError> {
        let mut f = Fields::default();
        let email = f.email("email", &self.email);
        let name = f.line::<200>("name", &self.name);
        let scope = PersonScope::of_columns(self.organization_id, self.certification_body_id);
        if scope.is_none() {
            f.problem("organization_id", "a person belongs to an organization or a certification body, not both");
        }
        let parsed = (|| Some((email?, name?, scope?)))();
        let (email, name, scope) = f.finish(parsed)?;
        let details = PersonDetails { email, name: name.into_inner(), role: self.role, scope };
        Ok((details, self.version))
    }
}

/// A person.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    /// Id.
    pub id: Uuid,
    /// Their address (lower case).
    pub email: String,
    /// Their name.
    pub name: String,
    /// What they do.
    pub role: PersonRole,
    /// Their organization (client managers).
    pub organization_id: Option<Uuid>,
    /// Their certification body (coordinators, auditors, decision makers).
    pub certification_body_id: Option<Uuid>,
    /// Version, for `If-Match`.
    pub version: i32,
    /// When added.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<person::Model> for PersonView {
    fn from(m: person::Model) -> Self {
        let scope = scope_of(&m);
        Self {
            id: m.id,
            email: m.email,
            name: m.name,
            role: m.role,
            organization_id: scope.organization_id(),
            certification_body_id: scope.certification_body_id(),
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Filters of the people list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeopleQuery {
    /// At most this many (1–100, default 20).
    pub limit: Option<u64>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Only this organization's people.
    pub organization_id: Option<Uuid>,
    /// Only this certification body's people.
    pub certification_body_id: Option<Uuid>,
    /// Only people with this role.
    pub role: Option<PersonRole>,
}

/// Adds a person to the directory. They can then sign in to the console with their address.
#[utoipa::path(
    tag = "people",
    operation_id = "add_person",
    request_body = PersonRequest,
    responses(
        (status = 201, description = "Added", body = PersonView),
        (status = 409, description = "Someone has this address already", body = crate::error::Problem, content_type = "application/problem+json"),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/people")]
pub async fn add_person(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    body: web::Json<PersonRequest>,
) -> Result<HttpResponse, ApiError> {
    let (details, _) = body.into_inner().parse()?;
    let (write, row) = app.add_person(&user, details, claim.claim()).await?;
    commit(write, HttpResponse::Created().json(PersonView::from(row))).await
}

/// The people the caller sees: everyone for an admin, else its own body's or organization's.
#[utoipa::path(
    tag = "people",
    operation_id = "list_people",
    params(PeopleQuery),
    responses((status = 200, description = "A page of people", body = Page<PersonView>), Refused),
    security(("bearer" = []))
)]
#[get("/people")]
pub async fn list_people(
    app: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PeopleQuery>,
) -> Result<web::Json<Page<PersonView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let mut select = Person::find().filter(people_in(user.tenancy));
    if let Some(id) = query.organization_id {
        select = select.filter(person::Column::OrganizationId.eq(id));
    }
    if let Some(id) = query.certification_body_id {
        select = select.filter(person::Column::CertificationBodyId.eq(id));
    }
    if let Some(role) = query.role {
        select = select.filter(person::Column::Role.eq(role));
    }
    let rows = id_page(select, person::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(rows, limit, |r| r.id, PersonView::from)))
}

/// One person.
#[utoipa::path(
    tag = "people",
    operation_id = "get_person",
    params(("id" = Uuid, Path, description = "Person id")),
    responses((status = 200, description = "The person", body = PersonView), Refused),
    security(("bearer" = []))
)]
#[get("/people/{id}")]
pub async fn get_person(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<PersonView>, ApiError> {
    Ok(web::Json(app.person(&user, *id).await?.into()))
}

/// Replaces a person's details. A change of address, role or scope ends their sessions.
#[utoipa::path(
    tag = "people",
    operation_id = "change_person",
    params(("id" = Uuid, Path, description = "Person id"), ("If-Match" = Option<String>, Header, description = "The version last read")),
    request_body = PersonRequest,
    responses(
        (status = 200, description = "Changed", body = PersonView),
        (status = 409, description = "Someone else has this address", body = crate::error::Problem, content_type = "application/problem+json"),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/people/{id}")]
pub async fn change_person(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<PersonRequest>,
) -> Result<HttpResponse, ApiError> {
    let (details, version) = body.into_inner().parse()?;
    let expected = expected_version(&request, version)?;
    let (write, row) = app.change_person(&user, *id, details, expected, claim.claim()).await?;
    commit(write, HttpResponse::Ok().json(PersonView::from(row))).await
}

/// Removes a person: their sessions end and their sign-in links stop working.
#[utoipa::path(
    tag = "people",
    operation_id = "remove_person",
    params(("id" = Uuid, Path, description = "Person id")),
    responses((status = 204, description = "Removed"), Refused),
    security(("bearer" = []))
)]
#[delete("/people/{id}")]
pub async fn remove_person(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let write = app.remove_person(&user, *id, claim.claim()).await?;
    commit(write, HttpResponse::NoContent().finish()).await
}
