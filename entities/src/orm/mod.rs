//! sea-orm entities, one file per table: generated shapes, no business logic.

pub mod audit;
pub mod certificate;
pub mod certification_body;
pub mod certification_decision;
pub mod certification_policy;
pub mod corrective_action;
pub mod deadline;
pub mod document;
pub mod engagement;
pub mod finding;
pub mod history_entry;
pub mod idempotency_key;
pub mod notification;
pub mod organization;
pub mod person;
pub mod prelude;
pub mod proposal;
pub mod reminder_policy;
pub mod session;
pub mod sign_in_link;
pub mod soa_entry;
pub mod token_revocation;
pub mod webhook_attempt;
pub mod webhook_endpoint;
pub mod webhook_event;
pub mod webhook_message;
pub mod webhook_outbox;

/// A JSON array column's value from a list of strings.
pub fn json_strings<S: AsRef<str>>(items: &[S]) -> serde_json::Value {
    serde_json::Value::Array(items.iter().map(|s| serde_json::Value::String(s.as_ref().to_owned())).collect())
}

/// The strings of a JSON array column (anything else reads as empty).
pub fn strings_of(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{json_strings, strings_of};

    #[test]
    fn a_list_of_strings_survives_its_json_column() {
        let listed = ["lead@cb.test", "auditor@cb.test"];
        assert_eq!(strings_of(&json_strings(&listed)), listed);
        assert_eq!(strings_of(&serde_json::json!({"not": "a list"})), Vec::<String>::new());
        assert_eq!(strings_of(&serde_json::json!(["kept", 3, null])), vec!["kept"]);
    }
}
