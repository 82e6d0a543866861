//! The console's event forms, read off the API's own schema of each event (the fields, their
//! types, which are required, what they mean): a field added to an event shows on its form
//! without a line here. A posted form becomes the JSON the API takes and is parsed by the same
//! code.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, Schema, SchemaFormat, SchemaType, Type};

use crate::error::ApiError;
use crate::routes::engagements::EventRequest;

/// How a field is entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One line of text.
    Text,
    /// Several lines (a list: one item a line).
    Lines,
    /// A calendar day.
    Date,
    /// A checkbox.
    Checkbox,
    /// One of these values.
    Choice(Vec<String>),
    /// An audit of the engagement.
    Audit,
}

/// A field of an event's form.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its name in the API.
    pub name: String,
    /// What the person reads.
    pub label: String,
    /// The API's description of it.
    pub help: String,
    /// How it is entered.
    pub input: Input,
    /// Whether it must be given.
    pub required: bool,
}

/// Every event's fields, by event name (`reason` and `evidence` added to each).
pub fn event_fields() -> &'static BTreeMap<String, Vec<Field>> {
    static FIELDS: OnceLock<BTreeMap<String, Vec<Field>>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let document = crate::routes::document();
        let components = document.components.map(|c| c.schemas).unwrap_or_default();
        let mut forms = BTreeMap::new();
        let Some(RefOr::T(Schema::OneOf(events))) = components.get("EventRequest").cloned() else {
            tracing::error!("BUG: the EventRequest schema is not a oneOf");
            return forms;
        };
        for event in events.items {
            let Some(Schema::Object(object)) = resolve(&components, &event) else { continue };
            let Some(name) =
                object.properties.get("event").and_then(|e| resolve(&components, e)).and_then(|e| match e {
                    Schema::Object(o) => {
                        o.enum_values.and_then(|v| v.first().and_then(|v| v.as_str().map(str::to_owned)))
                    }
                    _ => None,
                })
            else {
                continue;
            };
            let mut fields = Vec::new();
            for (field, schema) in &object.properties {
                if matches!(field.as_str(), "event" | "version") {
                    continue;
                }
                let Some(schema) = resolve(&components, schema) else { continue };
                fields.push(Field {
                    label: sentence(field.trim_end_matches("_id")),
                    help: description_of(&schema),
                    input: input_of(&components, field, &schema),
                    required: object.required.contains(field),
                    name: field.clone(),
                });
            }
            // The shared fields last: what changes first, then why.
            fields.sort_by_key(|f| matches!(f.name.as_str(), "reason" | "evidence"));
            forms.insert(name, fields);
        }
        forms
    })
}

type Components = BTreeMap<String, RefOr<Schema>>;

fn resolve(components: &Components, schema: &RefOr<Schema>) -> Option<Schema> {
    match schema {
        RefOr::T(schema) => Some(schema.clone()),
        RefOr::Ref(reference) => {
            let name = reference.ref_location.rsplit('/').next()?;
            resolve(components, components.get(name)?)
        }
    }
}

fn description_of(schema: &Schema) -> String {
    match schema {
        Schema::Object(o) => o.description.clone().unwrap_or_default(),
        Schema::Array(a) => a.description.clone().unwrap_or_default(),
        Schema::OneOf(o) => o.description.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

fn input_of(components: &Components, name: &str, schema: &Schema) -> Input {
    match schema {
        Schema::Array(_) => Input::Lines,
        Schema::OneOf(one) => {
            // `null` or a value: the value's input.
            let value = one
                .items
                .iter()
                .filter_map(|item| resolve(components, item))
                .find(|item| !matches!(item, Schema::Object(o) if o.schema_type == SchemaType::Type(Type::Null)));
            value.map_or(Input::Text, |value| input_of(components, name, &value))
        }
        Schema::Object(o) => {
            if let Some(values) = &o.enum_values {
                return Input::Choice(values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
            }
            let is = |t: Type| match &o.schema_type {
                SchemaType::Type(own) => *own == t,
                SchemaType::Array(types) => types.contains(&t),
                SchemaType::AnyValue => false,
            };
            if is(Type::Boolean) {
                Input::Checkbox
            } else if o.format == Some(SchemaFormat::KnownFormat(KnownFormat::Date)) {
                Input::Date
            } else if o.format == Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)) && name.ends_with("audit_id") {
                Input::Audit
            } else if is(Type::Array) {
                Input::Lines
            } else {
                Input::Text
            }
        }
        _ => Input::Text,
    }
}

/// `snake_case_words` as a sentence: "Snake case words".
pub fn sentence(name: &str) -> String {
    let words = name.replace('_', " ");
    let mut chars = words.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A posted event form as the API's request: empty fields left out, checkboxes as booleans,
/// lists one item a line.
pub fn event_request(event: &str, posted: &[(String, String)]) -> Result<EventRequest, ApiError> {
    let fields = event_fields().get(event).ok_or_else(|| ApiError::invalid("event", format!("no event '{event}'")))?;
    let mut object = Map::new();
    object.insert("event".into(), Value::String(event.to_owned()));
    for field in fields {
        let given = posted.iter().find(|(name, _)| *name == field.name).map(|(_, value)| value.trim());
        let value = match (&field.input, given) {
            (Input::Checkbox, given) => Value::Bool(given.is_some_and(|v| !v.is_empty())),
            (_, None | Some("")) => continue,
            (Input::Lines, Some(text)) => Value::Array(
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| Value::String(l.to_owned())).collect(),
            ),
            (_, Some(text)) => Value::String(text.to_owned()),
        };
        object.insert(field.name.clone(), value);
    }
    if let Some((_, version)) = posted.iter().find(|(name, _)| name == "version")
        && let Ok(version) = version.trim().parse::<i32>()
    {
        object.insert("version".into(), Value::from(version));
    }
    serde_json::from_value(Value::Object(object)).map_err(|error| ApiError::InvalidBody(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_form_read_off_the_api_schema() {
        let forms = event_fields();
        let letter = &forms["sign_engagement_letter"];
        let signed_on = letter.iter().find(|f| f.name == "signed_on").unwrap();
        assert_eq!(signed_on.input, Input::Date);
        assert!(signed_on.required);
        assert_eq!(letter.iter().find(|f| f.name == "include_pre_audit").unwrap().input, Input::Checkbox);
        let suspend = &forms["suspend"];
        let Input::Choice(causes) = &suspend.iter().find(|f| f.name == "cause").unwrap().input else {
            panic!("a suspension's cause is one of the causes")
        };
        assert!(causes.len() >= 2, "{causes:?}");
        assert_eq!(forms["complete_stage2"].iter().find(|f| f.name == "audit_id").unwrap().input, Input::Audit);
        assert_eq!(forms["record_stage1_outcome"].iter().find(|f| f.name == "gaps").unwrap().input, Input::Lines);
        assert!(forms["withdraw"].iter().any(|f| f.name == "reason"), "every form asks why");
        assert_eq!(forms.len(), <entities::domain::state::EngagementEvent as sea_orm::Iterable>::iter().count());
    }

    #[test]
    fn a_posted_form_becomes_the_api_request() {
        let posted = vec![
            ("signed_on".to_owned(), "2027-01-04".to_owned()),
            ("include_pre_audit".to_owned(), "on".to_owned()),
            ("scope".to_owned(), "".to_owned()),
            ("evidence".to_owned(), "dms://letter.pdf\n\n dms://annex.pdf ".to_owned()),
            ("version".to_owned(), "3".to_owned()),
        ];
        let request = event_request("sign_engagement_letter", &posted).unwrap();
        assert_eq!(request.evidence, vec!["dms://letter.pdf", "dms://annex.pdf"]);
        assert_eq!(request.version, Some(3));
        assert!(matches!(
            request.details,
            crate::routes::engagements::EventDetails::SignEngagementLetter { include_pre_audit: true, scope: None, .. }
        ));
        let bad = event_request("sign_engagement_letter", &[("signed_on".to_owned(), "tomorrow".to_owned())]);
        assert!(matches!(bad, Err(ApiError::InvalidBody(_))));
    }
}
