//! Stage 1 on the engagement page: the client registers its required documents and uploads its
//! Statement of Applicability as a CSV file (`control,applicable,justification`), through the
//! API's own code.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use entities::domain::RequiredDocument;
use futures::TryStreamExt;
use serde::Deserialize;
use uuid::Uuid;

use super::engagement::after_form;
use super::{Console, PageError, SignedIn};
use crate::error::{ApiError, FieldProblem};
use crate::routes::documents::{SoaEntryDto, SoaRequest, register_document, replace_statement_of_applicability};
use crate::state::AppState;

/// The largest SoA file taken.
const MOST_CSV_BYTES: usize = 512 * 1024;

/// The lines of a Statement of Applicability CSV: a header naming `control` and `applicable`
/// (and, optionally, `justification`), then one control a line; `applicable` is yes or no.
pub fn parse_soa_csv(text: &str) -> Result<Vec<SoaEntryDto>, ApiError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| ApiError::invalid("soa", format!("not a CSV file: {e}")))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(control), Some(applicable)) = (column("control"), column("applicable")) else {
        return Err(ApiError::invalid("soa", "the first line names the columns: control,applicable,justification"));
    };
    let justification = column("justification");
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| ApiError::invalid("soa", format!("line {line}: {e}")))?;
        let field = |at: usize| record.get(at).unwrap_or_default().to_owned();
        let applicable = match field(applicable).to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "1" | "applicable" | "included" => true,
            "no" | "n" | "false" | "0" | "excluded" | "not applicable" => false,
            other => {
                problems.push(FieldProblem::new(
                    format!("soa line {line}"),
                    format!("applicable is yes or no, not '{other}'"),
                ));
                continue;
            }
        };
        let justification = justification.map(field).filter(|j| !j.is_empty());
        entries.push(SoaEntryDto { control: field(control), applicable, justification });
    }
    if problems.is_empty() { Ok(entries) } else { Err(ApiError::Validation(problems)) }
}

/// The document form.
#[derive(Debug, Deserialize)]
pub struct DocumentForm {
    #[serde(default)]
    csrf: String,
    kind: RequiredDocument,
    reference: String,
}

/// `POST /engagements/{id}/documents`: registers a required document.
pub async fn register_document_form(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    me: SignedIn,
    id: web::Path<Uuid>,
    form: web::Form<DocumentForm>,
) -> Result<HttpResponse, PageError> {
    me.check_form(&console, &request, &form.csrf)?;
    let outcome = async {
        let (write, _) = register_document(&app, &me.user, *id, form.kind, &form.reference).await?;
        write.commit(None).await.map_err(ApiError::from)
    }
    .await;
    after_form(&app, &me, *id, outcome, &format!("/engagements/{id}#stage1-h")).await
}

/// `POST /engagements/{id}/statement-of-applicability` (multipart: `csrf`, `soa` the CSV file):
/// replaces the Statement of Applicability.
pub async fn upload_soa(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    me: SignedIn,
    id: web::Path<Uuid>,
    mut form: Multipart,
) -> Result<HttpResponse, PageError> {
    let (mut csrf, mut csv) = (String::new(), Vec::new());
    while let Some(mut field) = form.try_next().await.map_err(|e| ApiError::invalid("soa", e.to_string()))? {
        let name = field.name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.try_next().await.map_err(|e| ApiError::invalid("soa", e.to_string()))? {
            if bytes.len() + chunk.len() > MOST_CSV_BYTES {
                return Err(ApiError::invalid("soa", "the file is larger than 512 KiB").into());
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "soa" => csv = bytes,
            _ => {}
        }
    }
    me.check_form(&console, &request, &csrf)?;
    let outcome = async {
        let text = String::from_utf8(csv).map_err(|_| ApiError::invalid("soa", "the file is not UTF-8 text"))?;
        let entries = parse_soa_csv(text.trim_start_matches('\u{feff}'))?;
        let (write, _) = replace_statement_of_applicability(&app, &me.user, *id, SoaRequest { entries }).await?;
        write.commit(None).await.map_err(ApiError::from)
    }
    .await;
    after_form(&app, &me, *id, outcome, &format!("/engagements/{id}#stage1-h")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_soa_csv_reads_as_its_lines() {
        let csv = "Control,Applicable,Justification\n5.1,yes,Policies approved\n7.5, No ,\"No premises, fully remote\"\n8.1,true\n";
        let entries = parse_soa_csv(csv).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!((entries[1].control.as_str(), entries[1].applicable), ("7.5", false));
        assert_eq!(entries[1].justification.as_deref(), Some("No premises, fully remote"));
        assert_eq!(entries[2].justification, None);
    }

    #[test]
    fn an_soa_csv_without_its_columns_or_with_an_unclear_answer_is_refused_by_line() {
        assert!(parse_soa_csv("5.1,yes\n").is_err(), "the header names the columns");
        let Err(ApiError::Validation(problems)) = parse_soa_csv("control,applicable\n5.1,maybe\n5.2,yes\n") else {
            panic!("an unclear answer is a field problem")
        };
        assert_eq!(problems[0].field, "soa line 2");
    }
}
