//! Parsing request fields into domain values, collecting every problem before refusing.

use chrono::NaiveDate;
use entities::domain::dates::{EARLIEST_DATE, LATEST_DATE};
use entities::domain::text::{BoundedText, EmailAddress};

use crate::error::{ApiError, FieldProblem};

/// The problems found so far in one request.
#[derive(Debug, Default)]
pub struct Fields(Vec<FieldProblem>);

impl Fields {
    /// Records a problem with `field`.
    pub fn problem(&mut self, field: impl Into<String>, detail: impl ToString) {
        self.0.push(FieldProblem::new(field, detail));
    }

    /// Records a problem unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, detail: &str) {
        if !ok {
            self.problem(field, detail);
        }
    }

    /// Parses bounded text.
    pub fn text<const MAX: usize>(&mut self, field: &str, raw: &str) -> Option<BoundedText<MAX>> {
        BoundedText::parse(raw).map_err(|e| self.problem(field, e)).ok()
    }

    /// Parses bounded one-line text (a name): no line breaks or other control characters.
    pub fn line<const MAX: usize>(&mut self, field: &str, raw: &str) -> Option<BoundedText<MAX>> {
        BoundedText::parse_line(raw).map_err(|e| self.problem(field, e)).ok()
    }

    /// Parses optional bounded one-line text.
    pub fn optional_line<const MAX: usize>(
        &mut self,
        field: &str,
        raw: Option<&str>,
    ) -> Option<Option<BoundedText<MAX>>> {
        self.optional(raw, |f, raw| f.line(field, raw))
    }

    /// Parses optional bounded text.
    pub fn optional_text<const MAX: usize>(
        &mut self,
        field: &str,
        raw: Option<&str>,
    ) -> Option<Option<BoundedText<MAX>>> {
        self.optional(raw, |f, raw| f.text(field, raw))
    }

    /// An absent value is fine (`Some(None)`); a present one is parsed by `parse`.
    fn optional<T>(
        &mut self,
        raw: Option<&str>,
        parse: impl FnOnce(&mut Self, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(raw) => parse(self, raw).map(Some),
        }
    }

    /// Parses an email address.
    pub fn email(&mut self, field: &str, raw: &str) -> Option<EmailAddress> {
        EmailAddress::parse(raw).map_err(|e| self.problem(field, e)).ok()
    }

    /// Parses a list of email addresses.
    pub fn emails(&mut self, field: &str, raw: &[String]) -> Option<Vec<EmailAddress>> {
        let parsed: Vec<Option<EmailAddress>> =
            raw.iter().enumerate().map(|(i, r)| self.email(&format!("{field}[{i}]"), r)).collect();
        parsed.into_iter().collect()
    }

    /// Checks a date is within the range the API accepts.
    pub fn date(&mut self, field: &str, date: NaiveDate) -> Option<NaiveDate> {
        if (EARLIEST_DATE..=LATEST_DATE).contains(&date) {
            Some(date)
        } else {
            self.problem(field, format!("must be between {EARLIEST_DATE} and {LATEST_DATE}"));
            None
        }
    }

    /// Parses a list of short references (evidence, gaps): at most `max_items`, each bounded text.
    pub fn references(&mut self, field: &str, raw: &[String], max_items: usize) -> Option<Vec<String>> {
        if raw.len() > max_items {
            self.problem(field, format!("at most {max_items} items"));
            return None;
        }
        let parsed: Vec<Option<BoundedText<1000>>> =
            raw.iter().enumerate().map(|(i, r)| self.text(&format!("{field}[{i}]"), r)).collect();
        parsed.into_iter().map(|p| p.map(BoundedText::into_inner)).collect()
    }

    /// `Ok(value)` when no problem was found, else the validation error.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if self.0.is_empty() => {
                Err(ApiError::unexpected(anyhow::anyhow!("BUG: a field failed without a problem")))
            }
            _ => Err(ApiError::Validation(self.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_collected_before_refusing() {
        let mut fields = Fields::default();
        let name = fields.text::<10>("name", "  ");
        let email = fields.email("email", "not-an-email");
        let date = fields.date("day", NaiveDate::from_ymd_opt(1200, 1, 1).unwrap());
        let result = fields.finish(name.zip(email).zip(date));
        match result {
            Err(ApiError::Validation(problems)) => {
                let names: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
                assert_eq!(names, ["name", "email", "day"]);
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
}
