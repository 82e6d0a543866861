//! Stage 1's inputs: the required documents, the Statement of Applicability, and readiness.

use actix_web::{HttpResponse, get, put, web};
use chrono::{DateTime, Utc};
use entities::domain::RequiredDocument;
use entities::domain::soa::{SoaLine, SoaReport, check_statement_of_applicability, soa_changes};
use entities::domain::stage1::Stage1Readiness;
use entities::domain::text::BoundedText;
use entities::orm::{document, prelude::*, soa_entry};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::Write;
use engine::access::Action;
use engine::history::HistoryRecord;
use engine::lifecycle::stage1_readiness;
use engine::store::find_engagement_records;

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::commit;
use crate::pagination::{Page, PageQuery, decode_cursor, id_page, limit_of, page_of};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config
        .service(put_document)
        .service(list_documents)
        .service(put_statement_of_applicability)
        .service(get_statement_of_applicability)
        .service(get_stage1_readiness);
}

/// Where a required document can be found.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "reference": "dms://isms/policies/information-security-policy-v3.pdf" }))]
pub struct DocumentRequest {
    /// A reference to the document (URL, DMS path, version).
    pub reference: String,
}

/// A registered document.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    /// Which required document.
    pub kind: RequiredDocument,
    /// Where it is.
    pub reference: String,
    /// When it was registered or last replaced.
    pub registered_at: DateTime<Utc>,
}

impl From<document::Model> for DocumentView {
    fn from(m: document::Model) -> Self {
        Self { kind: m.kind, reference: m.reference, registered_at: m.registered_at }
    }
}

/// One line of a Statement of Applicability.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoaEntryDto {
    /// The Annex A (2022) control, e.g. `5.1`.
    pub control: String,
    /// Applicable (implemented or planned), or excluded.
    pub applicable: bool,
    /// Why included or excluded; required for an exclusion.
    pub justification: Option<String>,
}

/// A whole Statement of Applicability.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "entries": [
    { "control": "5.1", "applicable": true, "justification": "Policy set approved by the board" },
    { "control": "7.5", "applicable": false, "justification": "No physical premises in scope" }
]}))]
pub struct SoaRequest {
    /// Every control, once.
    pub entries: Vec<SoaEntryDto>,
}

/// The Statement of Applicability and its check.
#[derive(Debug, Serialize, ToSchema)]
pub struct SoaView {
    /// The lines, by control.
    pub entries: Vec<SoaEntryDto>,
    /// What keeps it from being complete.
    pub report: SoaReport,
}

/// Registers (or replaces) a required document.
#[utoipa::path(
    tag = "stage1",
    operation_id = "put_document",
    params(("id" = Uuid, Path, description = "Engagement id"), ("kind" = RequiredDocument, Path, description = "Which required document")),
    request_body = DocumentRequest,
    responses(
        (status = 200, description = "Registered", body = DocumentView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/engagements/{id}/documents/{kind}")]
pub async fn put_document(
    app: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, RequiredDocument)>,
    body: web::Json<DocumentRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, kind) = path.into_inner();
    let (write, saved) = register_document(&app, &user, id, kind, &body.reference).await?;
    commit(write, HttpResponse::Ok().json(DocumentView::from(saved))).await
}

/// Registers (or replaces) the `kind` document of engagement `id` (the API's and the console's
/// one way); the caller commits the write.
pub async fn register_document(
    app: &AppState,
    user: &AuthUser,
    id: Uuid,
    kind: RequiredDocument,
    reference: &str,
) -> Result<(Write, document::Model), ApiError> {
    let mut f = Fields::default();
    let reference = f.line::<2000>("reference", reference);
    let reference = f.finish(reference)?.into_inner();
    let (write, _) = app.begin_on_engagement(user, id, Action::SubmitDocument, None).await?;
    let (txn, now) = (write.txn(), write.now());
    let existing = Document::find()
        .filter(document::Column::EngagementId.eq(id))
        .filter(document::Column::Kind.eq(kind))
        .one(txn)
        .await?;
    // Stage 1 evidence keeps its history: the reference it replaces goes with the change.
    let was = existing.as_ref().map(|d| format!("was {}", d.reference));
    let change = HistoryRecord::change(id, format!("document_registered:{kind}"), &user.subject, None).with_reason(was);
    write.record_history(change).await?;
    let saved = match existing {
        Some(existing) => {
            let mut model = existing.into_active_model();
            model.reference = Set(reference);
            model.registered_at = Set(now);
            model.update(txn).await?
        }
        None => {
            document::ActiveModel {
                id: Set(Uuid::now_v7()),
                engagement_id: Set(id),
                kind: Set(kind),
                reference: Set(reference),
                registered_at: Set(now),
            }
            .insert(txn)
            .await?
        }
    };
    Ok((write, saved))
}

/// The documents registered for stage 1.
#[utoipa::path(
    tag = "stage1",
    operation_id = "list_documents",
    params(("id" = Uuid, Path, description = "Engagement id"), PageQuery),
    responses(
        (status = 200, description = "A page of the documents, in the order they were first submitted", body = Page<DocumentView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/documents")]
pub async fn list_documents(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<DocumentView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    find_engagement_records(&app.db, &user, *id).await?;
    let documents = Document::find().filter(document::Column::EngagementId.eq(*id));
    let documents = id_page(documents, document::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(documents, limit, |d| d.id, DocumentView::from)))
}

fn soa_view(entries: Vec<soa_entry::Model>) -> SoaView {
    let lines: Vec<SoaLine> = entries
        .iter()
        .map(|e| SoaLine {
            control: e.control.clone(),
            applicable: e.applicable,
            justification: e.justification.clone(),
        })
        .collect();
    SoaView {
        report: check_statement_of_applicability(&lines),
        entries: entries
            .into_iter()
            .map(|e| SoaEntryDto { control: e.control, applicable: e.applicable, justification: e.justification })
            .collect(),
    }
}

/// Replaces the Statement of Applicability, and checks it against Annex A (2022).
#[utoipa::path(
    tag = "stage1",
    operation_id = "put_statement_of_applicability",
    params(("id" = Uuid, Path, description = "Engagement id")),
    request_body = SoaRequest,
    responses(
        (status = 200, description = "Saved, with its check (an incomplete SoA is saved and reported)", body = SoaView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/engagements/{id}/statement-of-applicability")]
pub async fn put_statement_of_applicability(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<SoaRequest>,
) -> Result<HttpResponse, ApiError> {
    let (write, saved) = replace_statement_of_applicability(&app, &user, *id, body.into_inner()).await?;
    commit(write, HttpResponse::Ok().json(soa_view(saved))).await
}

/// Replaces the Statement of Applicability of engagement `id` (the API's and the console's one
/// way); the caller commits the write.
pub async fn replace_statement_of_applicability(
    app: &AppState,
    user: &AuthUser,
    id: Uuid,
    request: SoaRequest,
) -> Result<(Write, Vec<soa_entry::Model>), ApiError> {
    let mut f = Fields::default();
    f.check(request.entries.len() <= 200, "entries", "at most 200 lines");
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in request.entries.iter().enumerate() {
        f.check(
            BoundedText::<20>::parse_line(&entry.control).is_ok(),
            &format!("entries[{i}].control"),
            "must be a control number such as 5.1",
        );
        f.check(seen.insert(entry.control.trim()), &format!("entries[{i}].control"), "is listed twice");
        if let Some(justification) = entry.justification.as_deref().filter(|j| !j.trim().is_empty()) {
            f.check(
                BoundedText::<4000>::parse(justification).is_ok(),
                &format!("entries[{i}].justification"),
                "at most 4000 characters, and no control characters other than line breaks and tabs",
            );
        }
    }
    f.finish(Some(()))?;
    let (write, _) = app.begin_on_engagement(user, id, Action::SubmitDocument, None).await?;
    let txn = write.txn();
    let lines_of = |entries: Vec<soa_entry::Model>| -> Vec<SoaLine> {
        entries
            .into_iter()
            .map(|e| SoaLine { control: e.control, applicable: e.applicable, justification: e.justification })
            .collect()
    };
    let before = lines_of(SoaEntry::find().filter(soa_entry::Column::EngagementId.eq(id)).all(txn).await?);
    SoaEntry::delete_many().filter(soa_entry::Column::EngagementId.eq(id)).exec(txn).await?;
    let rows: Vec<soa_entry::ActiveModel> = request
        .entries
        .into_iter()
        .map(|e| soa_entry::ActiveModel {
            engagement_id: Set(id),
            control: Set(e.control.trim().to_owned()),
            applicable: Set(e.applicable),
            justification: Set(e.justification.map(|j| j.trim().to_owned()).filter(|j| !j.is_empty())),
        })
        .collect();
    if !rows.is_empty() {
        SoaEntry::insert_many(rows).exec(txn).await?;
    }
    let saved = SoaEntry::find()
        .filter(soa_entry::Column::EngagementId.eq(id))
        .order_by_asc(soa_entry::Column::Control)
        .all(txn)
        .await?;
    // The SoA evolves after certification too, but never silently: each change, with what it was.
    let changes = soa_changes(&before, &lines_of(saved.clone()));
    if !changes.is_empty() {
        let change = HistoryRecord::change(id, "statement_of_applicability_changed", &user.subject, None)
            .with_reason(Some(changes.join("\n")));
        write.record_history(change).await?;
    }
    Ok((write, saved))
}

/// The Statement of Applicability and its check.
#[utoipa::path(
    tag = "stage1",
    operation_id = "get_statement_of_applicability",
    params(("id" = Uuid, Path, description = "Engagement id")),
    responses(
        (status = 200, description = "The SoA and its check", body = SoaView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/statement-of-applicability")]
pub async fn get_statement_of_applicability(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<SoaView>, ApiError> {
    find_engagement_records(&app.db, &user, *id).await?;
    let entries = SoaEntry::find()
        .filter(soa_entry::Column::EngagementId.eq(*id))
        .order_by_asc(soa_entry::Column::Control)
        .all(&app.db)
        .await?;
    Ok(web::Json(soa_view(entries)))
}

/// Stage 1 readiness: the missing documents and the SoA's gaps.
#[utoipa::path(
    tag = "stage1",
    operation_id = "get_stage1_readiness",
    params(("id" = Uuid, Path, description = "Engagement id")),
    responses(
        (status = 200, description = "The readiness report", body = Stage1Readiness),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/stage1-readiness")]
pub async fn get_stage1_readiness(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<Stage1Readiness>, ApiError> {
    find_engagement_records(&app.db, &user, *id).await?;
    Ok(web::Json(stage1_readiness(&app.db, *id).await?))
}
