//! Organizations seeking certification: ISMS scope, headcount, sites.

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use entities::orm::{organization, prelude::*};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::EngineError;
use engine::Target;
use engine::access::{Action, Party, organizations_in};
use engine::contacts::{organization_domains, refused};
use engine::store::{check_version, json_strings, strings_of};
use entities::domain::contacts::{check_contact, registered_domains};

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
        .service(create_organization)
        .service(list_organizations)
        .service(get_organization)
        .service(update_organization);
}

/// An organization as clients send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "legal_name": "Acme Data Ltd",
    "isms_scope": "Development and operation of the Acme SaaS platform, London and Leeds offices",
    "persons": 120,
    "sites": ["London", "Leeds"],
    "accepts_unaccredited_cb": false,
    "isms_manager_email": "isms@acme.example",
    "executive_email": "ceo@acme.example"
}))]
pub struct OrganizationRequest {
    /// Legal name.
    pub legal_name: String,
    /// ISMS scope statement: business units, locations, processes, assets in scope.
    pub isms_scope: String,
    /// Persons doing work under the organization's control (drives audit time).
    pub persons: u32,
    /// Sites in scope.
    #[serde(default)]
    pub sites: Vec<String>,
    /// The organization accepts a certification body without accreditation.
    #[serde(default)]
    pub accepts_unaccredited_cb: bool,
    /// The client's ISMS manager.
    pub isms_manager_email: String,
    /// The client executive, last step of escalations.
    pub executive_email: String,
    /// The email domains the organization's people use (e.g. `acme.example`; subdomains
    /// included): certflow emails only addresses on them or on the selected certification body's.
    /// Registered by an admin; when a new organization names none, those of its ISMS manager and
    /// executive. A client's update may leave it out (it keeps them) but not change them.
    #[serde(default)]
    pub email_domains: Option<Vec<String>>,
    /// On an update: the version last read; the write is refused (412) if it changed. `If-Match`
    /// says the same.
    #[serde(default)]
    pub version: Option<i32>,
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    /// Id.
    pub id: Uuid,
    /// Legal name.
    pub legal_name: String,
    /// ISMS scope statement.
    pub isms_scope: String,
    /// Persons doing work under the organization's control.
    pub persons: i32,
    /// Sites in scope.
    pub sites: Vec<String>,
    /// Accepts an unaccredited certification body.
    pub accepts_unaccredited_cb: bool,
    /// ISMS manager.
    pub isms_manager_email: String,
    /// Executive.
    pub executive_email: String,
    /// The email domains certflow may email for the organization (with the selected
    /// certification body's).
    pub email_domains: Vec<String>,
    /// Version, for `If-Match`.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<organization::Model> for OrganizationView {
    fn from(m: organization::Model) -> Self {
        Self {
            id: m.id,
            sites: strings_of(&m.sites),
            email_domains: organization_domains(&m),
            legal_name: m.legal_name,
            isms_scope: m.isms_scope,
            persons: m.persons,
            accepts_unaccredited_cb: m.accepts_unaccredited_cb,
            isms_manager_email: m.isms_manager_email,
            executive_email: m.executive_email,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The parsed fields of an organization.
struct OrganizationFields {
    legal_name: String,
    isms_scope: String,
    persons: i32,
    sites: Vec<String>,
    accepts_unaccredited_cb: bool,
    isms_manager_email: String,
    executive_email: String,
    email_domains: Option<Vec<String>>,
}

impl TryFrom<OrganizationRequest> for OrganizationFields {
    type Error = ApiError;

    fn try_from(request: OrganizationRequest) -> Result<Self, ApiError> {
        let mut f = Fields::default();
        let legal_name = f.line::<200>("legal_name", &request.legal_name);
        let isms_scope = f.text::<4000>("isms_scope", &request.isms_scope);
        f.check((1..=1_000_000).contains(&request.persons), "persons", "must be between 1 and 1,000,000");
        let sites = f.references("sites", &request.sites, 500);
        let manager = f.email("isms_manager_email", &request.isms_manager_email);
        let executive = f.email("executive_email", &request.executive_email);
        let email_domains = request.email_domains.map(|domains| {
            f.check((1..=20).contains(&domains.len()), "email_domains", "lists 1 to 20 domains");
            for domain in &domains {
                f.check(
                    is_domain(domain),
                    "email_domains",
                    &format!("'{domain}' is not a domain name like acme.example"),
                );
            }
            domains.iter().map(|d| d.to_ascii_lowercase()).collect::<Vec<_>>()
        });
        let parsed = (|| Some((legal_name?, isms_scope?, sites?, manager?, executive?)))();
        let (legal_name, isms_scope, sites, manager, executive) = f.finish(parsed)?;
        Ok(Self {
            legal_name: legal_name.into_inner(),
            isms_scope: isms_scope.into_inner(),
            persons: i32::try_from(request.persons).unwrap_or(i32::MAX),
            sites,
            accepts_unaccredited_cb: request.accepts_unaccredited_cb,
            isms_manager_email: manager.to_string(),
            executive_email: executive.to_string(),
            email_domains,
        })
    }
}

/// A domain name: labels of letters, digits and hyphens, at least two, at most 253 characters.
fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Refuses an organization whose own contacts are not on its domains.
fn check_own_contacts(fields: &OrganizationFields, domains: &[String]) -> Result<(), ApiError> {
    for (field, address) in
        [("isms_manager_email", &fields.isms_manager_email), ("executive_email", &fields.executive_email)]
    {
        check_contact(address, domains, &[]).map_err(|refusal| ApiError::from(refused(field, &refusal)))?;
    }
    Ok(())
}

fn set_fields(model: &mut organization::ActiveModel, fields: OrganizationFields) {
    model.legal_name = Set(fields.legal_name);
    model.isms_scope = Set(fields.isms_scope);
    model.persons = Set(fields.persons);
    model.sites = Set(json_strings(&fields.sites));
    model.accepts_unaccredited_cb = Set(fields.accepts_unaccredited_cb);
    model.isms_manager_email = Set(fields.isms_manager_email);
    model.executive_email = Set(fields.executive_email);
}

fn set_domains(model: &mut organization::ActiveModel, domains: &[String]) {
    model.email_domains = Set(Some(json_strings(domains)));
}

/// Registers an organization.
#[utoipa::path(
    tag = "organizations",
    operation_id = "create_organization",
    request_body = OrganizationRequest,
    responses(
        (status = 201, description = "Created", body = OrganizationView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/organizations")]
pub async fn create_organization(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    body: web::Json<OrganizationRequest>,
) -> Result<HttpResponse, ApiError> {
    user.may(Action::CreateOrganization)?;
    let fields = OrganizationFields::try_from(body.into_inner())?;
    let domains = fields
        .email_domains
        .clone()
        .unwrap_or_else(|| registered_domains(&[], &fields.isms_manager_email, &fields.executive_email));
    check_own_contacts(&fields, &domains)?;
    let write = app.begin(&user, Target::Platform, Action::CreateOrganization, claim.claim()).await?;
    let mut model = organization::ActiveModel {
        id: Set(Uuid::now_v7()),
        version: Set(1),
        created_at: Set(write.now()),
        updated_at: Set(write.now()),
        ..Default::default()
    };
    set_fields(&mut model, fields);
    set_domains(&mut model, &domains);
    let created = model.insert(write.txn()).await?;
    commit(write, HttpResponse::Created().json(OrganizationView::from(created))).await
}

/// Lists organizations, oldest first.
#[utoipa::path(
    tag = "organizations",
    operation_id = "list_organizations",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of organizations", body = Page<OrganizationView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/organizations")]
pub async fn list_organizations(
    app: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<OrganizationView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let select = Organization::find().filter(organizations_in(user.tenancy, organization::Column::Id));
    let rows = id_page(select, organization::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(rows, limit, |r| r.id, OrganizationView::from)))
}

/// One organization.
#[utoipa::path(
    tag = "organizations",
    operation_id = "get_organization",
    params(("id" = Uuid, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = OrganizationView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/organizations/{id}")]
pub async fn get_organization(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<OrganizationView>, ApiError> {
    let found = Organization::find_by_id(*id)
        .filter(organizations_in(user.tenancy, organization::Column::Id))
        .one(&app.db)
        .await?
        .ok_or(ApiError::not_found("organization"))?;
    Ok(web::Json(found.into()))
}

/// Replaces an organization's details; `If-Match: "<version>"` guards against lost updates.
#[utoipa::path(
    tag = "organizations",
    operation_id = "update_organization",
    params(("id" = Uuid, Path, description = "Organization id"), ("If-Match" = Option<String>, Header, description = "The version last read")),
    request_body = OrganizationRequest,
    responses(
        (status = 200, description = "Updated", body = OrganizationView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/organizations/{id}")]
pub async fn update_organization(
    app: web::Data<AppState>,
    user: AuthUser,
    request: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<OrganizationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let expected = expected_version(&request, body.version)?;
    let fields = OrganizationFields::try_from(body)?;
    let write = app.begin(&user, Target::Organization(*id), Action::UpdateOrganization, None).await?;
    let found = Organization::find_by_id(*id)
        .filter(organizations_in(user.tenancy, organization::Column::Id))
        .lock_exclusive()
        .one(write.txn())
        .await?
        .ok_or(ApiError::not_found("organization"))?;
    check_version(expected, found.version)?;
    // The domains are the platform's word: a client keeps them (or sends them unchanged).
    let current = organization_domains(&found);
    let domains = fields.email_domains.clone().unwrap_or_else(|| current.clone());
    if domains != current && user.party != Party::Admin {
        return Err(EngineError::Forbidden("only an admin changes an organization's email domains".into()).into());
    }
    check_own_contacts(&fields, &domains)?;
    let version = found.version;
    let mut model = found.into_active_model();
    set_fields(&mut model, fields);
    set_domains(&mut model, &domains);
    model.version = Set(version + 1);
    model.updated_at = Set(write.now());
    let updated = model.update(write.txn()).await?;
    commit(write, HttpResponse::Ok().json(OrganizationView::from(updated))).await
}
