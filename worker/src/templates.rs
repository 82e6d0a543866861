//! Email templates: files under `worker/templates/<kind>/`, rendered by minijinja into a subject,
//! a plain-text part and an HTML part (HTML auto-escaped).

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use entities::domain::reminders::StepKind;

const TEMPLATES: [(&str, &str); 9] = [
    ("reminder/subject.txt.j2", include_str!("../templates/reminder/subject.txt.j2")),
    ("reminder/body.txt.j2", include_str!("../templates/reminder/body.txt.j2")),
    ("reminder/body.html.j2", include_str!("../templates/reminder/body.html.j2")),
    ("escalation/subject.txt.j2", include_str!("../templates/escalation/subject.txt.j2")),
    ("escalation/body.txt.j2", include_str!("../templates/escalation/body.txt.j2")),
    ("escalation/body.html.j2", include_str!("../templates/escalation/body.html.j2")),
    ("notice/subject.txt.j2", include_str!("../templates/notice/subject.txt.j2")),
    ("notice/body.txt.j2", include_str!("../templates/notice/body.txt.j2")),
    ("notice/body.html.j2", include_str!("../templates/notice/body.html.j2")),
];

/// What one reminder or escalation says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReminderFacts {
    /// The notification (also in the Message-ID).
    pub notification_id: String,
    /// `reminder-14`, `escalation+7`.
    pub step_key: String,
    /// What is due, in words: "the corrective action for finding A.8.13".
    pub what: String,
    /// More about it.
    pub detail: String,
    /// Text the client wrote (a corrective action), line by line: quoted as the client's, never
    /// as certflow's own words.
    pub client_text: Vec<String>,
    /// The due date.
    pub due_on: String,
    /// Days until the due date (0 on the day).
    pub days_until: i64,
    /// Days past the due date (0 before and on the day).
    pub days_late: i64,
    /// The organization's legal name.
    pub organization: String,
    /// The certification body's name.
    pub certification_body: String,
    /// The engagement.
    pub engagement_id: String,
    /// Its current state.
    pub engagement_state: String,
    /// The deadline's owner.
    pub owner_email: String,
    /// The roles the recipients hold, in words.
    pub roles: String,
    /// Where to act.
    pub link: String,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The loaded templates.
#[derive(Debug)]
pub struct Templates {
    environment: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut environment = Environment::new();
        environment.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") { AutoEscape::Html } else { AutoEscape::None }
        });
        for (name, source) in TEMPLATES {
            environment.add_template(name, source).expect("BUG: a shipped email template does not parse");
        }
        Self { environment }
    }
}

impl Templates {
    /// Renders the email of a `kind` step.
    pub fn render(&self, kind: StepKind, facts: &ReminderFacts) -> Result<RenderedEmail, minijinja::Error> {
        let render = |part: &str| self.environment.get_template(&format!("{kind}/{part}"))?.render(facts);
        Ok(RenderedEmail {
            // One line whatever the data holds: no header can be injected through a name.
            subject: render("subject.txt.j2")?
                .split(|c: char| c.is_whitespace() || c.is_control())
                .filter(|word| !word.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            text: render("body.txt.j2")?,
            html: render("body.html.j2")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(days_until: i64) -> ReminderFacts {
        ReminderFacts {
            notification_id: "01a2".into(),
            step_key: "reminder-7".into(),
            what: "the corrective action for finding A.8.13".into(),
            detail: "restore test <overdue> & untested".into(),
            client_text: Vec::new(),
            due_on: "2026-03-20".into(),
            days_until,
            days_late: (-days_until).max(0),
            organization: "Acme Data Ltd".into(),
            certification_body: "Trusted CB".into(),
            engagement_id: "eng-1".into(),
            engagement_state: "corrective_actions".into(),
            owner_email: "sre@acme.test".into(),
            roles: "deadline owner".into(),
            link: "http://127.0.0.1:8080/engagements/eng-1?deadline=d-1#deadline-d-1".into(),
        }
    }

    #[test]
    fn a_reminder_names_what_when_who_and_where_to_act() {
        let email = Templates::default().render(StepKind::Reminder, &facts(7)).unwrap();
        assert_eq!(
            email.subject,
            "[certflow] the corrective action for finding A.8.13 due in 7 days (2026-03-20) - Acme Data Ltd"
        );
        for expected in [
            "Acme Data Ltd",
            "Trusted CB",
            "eng-1",
            "2026-03-20",
            "in 7 days",
            "sre@acme.test",
            "/engagements/eng-1?deadline=d-1",
        ] {
            assert!(email.text.contains(expected), "{expected} missing from {}", email.text);
        }
        assert!(email.html.contains("restore test &lt;overdue&gt; &amp; untested"), "HTML is escaped: {}", email.html);
        assert!(email.text.contains("restore test <overdue> & untested"), "text is not escaped");
    }

    #[test]
    fn what_the_client_wrote_is_quoted_as_the_client_s() {
        let mut quoted = facts(7);
        quoted.client_text = vec!["Restore tests every quarter.".into(), "<b>Urgent</b>: wire money to x".into()];
        for kind in [StepKind::Reminder, StepKind::Escalation] {
            let email = Templates::default().render(kind, &quoted).unwrap();
            assert!(email.text.contains("Written by the client"), "{}", email.text);
            assert!(
                email.text.contains("> Restore tests every quarter.\n> <b>Urgent</b>: wire money to x"),
                "{}",
                email.text
            );
            assert!(
                email.html.contains("<blockquote>Restore tests every quarter.<br>&lt;b&gt;Urgent"),
                "{}",
                email.html
            );
        }
        let plain = Templates::default().render(StepKind::Reminder, &facts(7)).unwrap();
        assert!(!plain.text.contains("Written by the client"), "nothing quoted when the client wrote nothing");
    }

    #[test]
    fn a_subject_is_one_line_whatever_the_names_hold() {
        let mut injected = facts(7);
        injected.organization = "Acme\r\nBcc: eve@evil.test".into();
        let email = Templates::default().render(StepKind::Reminder, &injected).unwrap();
        assert!(!email.subject.contains(['\r', '\n']), "{:?}", email.subject);
        assert!(email.subject.ends_with("- Acme Bcc: eve@evil.test"), "{:?}", email.subject);
    }

    #[test]
    fn an_escalation_says_how_late() {
        let templates = Templates::default();
        let late = templates.render(StepKind::Escalation, &facts(-7)).unwrap();
        assert_eq!(
            late.subject,
            "[certflow] ESCALATION: the corrective action for finding A.8.13 7 days overdue (2026-03-20) - Acme Data Ltd"
        );
        assert!(late.text.contains("is 7 days late"), "{}", late.text);
        let today = templates.render(StepKind::Escalation, &facts(0)).unwrap();
        assert!(today.subject.contains("due today"), "{}", today.subject);
    }
}
