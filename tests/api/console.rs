//! The console without a browser: sign-in from a real email (once, within its time), pages that
//! 404 outside the caller's scope exactly like the API, CSRF on every form, events fired and
//! corrective actions submitted through forms over the API's own rules, and calendar feeds that
//! parse as iCalendar and hold only the caller's records.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, day, day0, spawn_app_with, wait_at_most};
use crate::on_both_databases;
use crate::smtp::SmtpSink;

/// A person's browser, without the browser: cookies kept, redirects not followed.
pub struct Visitor {
    address: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// An answer to a page request.
pub struct PageReply {
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl PageReply {
    /// The form's CSRF token on this page.
    pub fn csrf(&self) -> String {
        hidden(&self.body, "csrf").expect("the page has a form with its CSRF token")
    }

    pub fn location(&self) -> String {
        self.headers.get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// The value of the hidden input `name` on `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}

impl Visitor {
    pub fn new(app: &TestApp) -> Self {
        let client = crate::helpers::client().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { address: app.address.clone(), client, cookies: HashMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> PageReply {
        let response = request.header("cookie", self.cookie_header()).send().await.expect("the page answers");
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        PageReply { status, body: response.text().await.unwrap(), headers }
    }

    pub async fn get(&mut self, path: &str) -> PageReply {
        let request = self.client.get(format!("{}{path}", self.address));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> PageReply {
        let request = self.client.post(format!("{}{path}", self.address)).form(form);
        self.send(request).await
    }

    pub async fn post_multipart(&mut self, path: &str, form: reqwest::multipart::Form) -> PageReply {
        let request = self.client.post(format!("{}{path}", self.address)).multipart(form);
        self.send(request).await
    }

    pub async fn post_from(&mut self, origin: &str, path: &str, form: &[(&str, &str)]) -> PageReply {
        let request = self.client.post(format!("{}{path}", self.address)).header("origin", origin).form(form);
        self.send(request).await
    }
}

/// How many emails `smtp` received for `email`.
pub fn emails_to(smtp: &SmtpSink, email: &str) -> usize {
    smtp.received().iter().filter(|m| m.to == [email]).count()
}

/// The sign-in link in the email `smtp` receives for `email` after the `before` it had (waits).
pub async fn emailed_link(smtp: &SmtpSink, email: &str, before: usize) -> String {
    wait_at_most(30, "the sign-in email", || async { emails_to(smtp, email) > before }).await;
    let received = smtp.received();
    let message = received.iter().filter(|m| m.to == [email]).nth(before).unwrap();
    assert_eq!(message.subject(), "Sign in to certflow");
    let data = message.data.replace("=\r\n", "");
    let start = data.find("/sign-in/").expect("the email carries a sign-in link");
    let token: String = data[start + "/sign-in/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "a 256-bit token");
    format!("/sign-in/{token}")
}

/// Signs `email` in through the sign-in page and the emailed link.
pub async fn sign_in(app: &TestApp, smtp: &SmtpSink, email: &str) -> Visitor {
    let mut visitor = Visitor::new(app);
    let form = visitor.get("/sign-in").await;
    assert_eq!(form.status, 200);
    let before = emails_to(smtp, email);
    let sent = visitor.post("/sign-in", &[("email", email), ("next", "/"), ("csrf", &form.csrf())]).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let link = emailed_link(smtp, email, before).await;
    let confirm = visitor.get(&link).await;
    assert_eq!(confirm.status, 200);
    let opened = visitor.post(&link, &[("csrf", &confirm.csrf())]).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    visitor
}

/// A server that sends its sign-in emails to a real SMTP server.
pub async fn app_with_mail(backend: Backend) -> (TestApp, SmtpSink) {
    let smtp = SmtpSink::start();
    let port = smtp.port.to_string();
    let app =
        spawn_app_with(backend, &[("SMTP_HOST", "127.0.0.1"), ("SMTP_PORT", &port), ("SMTP_SECURITY", "none")]).await;
    (app, smtp)
}

/// Adds a person to the directory as the admin: their id.
pub async fn add_person(app: &TestApp, email: &str, role: &str, scope: Value) -> String {
    let mut body = json!({ "email": email, "name": format!("{role} of the test"), "role": role });
    body.as_object_mut().unwrap().extend(scope.as_object().unwrap().clone());
    app.post("/api/v1/people", &body).await.expect(201).str("id")
}

async fn a_sign_in_link_from_a_real_email_opens_one_session_for_a_known_address_only(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let cb = app.create_certification_body(true).await;
    add_person(&app, "ana@cb.test", "coordinator", json!({ "certification_body_id": cb })).await;

    // An unknown address: the same answer, and no email.
    let mut stranger = Visitor::new(&app);
    let form = stranger.get("/sign-in").await;
    let unknown = stranger.post("/sign-in", &[("email", "nobody@cb.test"), ("csrf", &form.csrf())]).await;
    let mut visitor = Visitor::new(&app);
    let form = visitor.get("/sign-in?next=/%3Fwithin%3D30").await;
    let known =
        visitor.post("/sign-in", &[("email", "Ana@CB.test"), ("next", "/?within=30"), ("csrf", &form.csrf())]).await;
    assert_eq!((unknown.status, known.status), (200, 200));
    let said = |page: &PageReply| {
        page.body.split("id=\"sent\"").nth(1).unwrap().split("</p>").next().unwrap().replace("nobody", "ana")
    };
    assert_eq!(said(&unknown), said(&known), "an unknown address is told exactly what a known one is");

    let link = emailed_link(&smtp, "ana@cb.test", 0).await;
    assert!(smtp.received().iter().all(|m| m.to != ["nobody@cb.test"]), "no email to an unknown address");
    // Fetching the link (a mail scanner would) spends nothing; the button does.
    let confirm = visitor.get(&link).await;
    assert_eq!(confirm.status, 200);
    let opened = visitor.post(&link, &[("csrf", &confirm.csrf())]).await;
    assert_eq!(opened.status, 303);
    assert_eq!(opened.location(), "/?within=30", "back where the person was going");
    let cookie = opened
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("certflow_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Max-Age=43200", "Path=/"] {
        assert!(cookie.contains(attribute), "the session cookie is {attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not Secure over the local http default");
    let home = visitor.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("coordinator of the test"), "the portfolio names who is signed in");

    // Once: a second press is refused, with the reason.
    let again = Visitor::new(&app).post(&link, &[("csrf", &confirm.csrf())]).await;
    assert_eq!(again.status, 403, "another browser has no form cookie: refused before the link is read");
    let mut replay = visitor;
    let confirm = replay.get(&link).await;
    let spent = replay.post(&link, &[("csrf", &confirm.csrf())]).await;
    assert_eq!(spent.status, 422);
    assert!(spent.body.contains("used already"), "{}", spent.body);

    // Within 15 minutes: a link past its time is refused.
    let mut late = Visitor::new(&app);
    let form = late.get("/sign-in").await;
    late.post("/sign-in", &[("email", "ana@cb.test"), ("csrf", &form.csrf())]).await;
    let link = emailed_link(&smtp, "ana@cb.test", 1).await;
    let db = app.db().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &db,
        "UPDATE sign_in_links SET expires_at = created_at WHERE used_at IS NULL",
    )
    .await
    .unwrap();
    let confirm = late.get(&link).await;
    let expired = late.post(&link, &[("csrf", &confirm.csrf())]).await;
    assert_eq!(expired.status, 422);
    assert!(expired.body.contains("expired"), "{}", expired.body);

    // Signing out ends the session.
    let mut visitor = sign_in(&app, &smtp, "ana@cb.test").await;
    let home = visitor.get("/").await;
    let out = visitor.post("/sign-out", &[("csrf", &home.csrf())]).await;
    assert_eq!(out.status, 303);
    assert_eq!(visitor.get("/").await.status, 303, "signed out: back to the sign-in page");
}
on_both_databases!(a_sign_in_link_from_a_real_email_opens_one_session_for_a_known_address_only);

async fn pages_are_404_outside_the_scope_and_every_form_needs_its_csrf_token(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let view = app.engagement(&engagement).await.body;
    let cb = view["certification_body_id"].as_str().unwrap().to_owned();
    let other_cb = app.create_certification_body(true).await;
    add_person(&app, "ana@cb.test", "coordinator", json!({ "certification_body_id": cb })).await;
    add_person(&app, "otto@other.test", "coordinator", json!({ "certification_body_id": other_cb })).await;

    // Without a session: to the sign-in page, and back here after it.
    let mut anonymous = Visitor::new(&app);
    let page = anonymous.get(&format!("/engagements/{engagement}?deadline=x")).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), format!("/sign-in?next=/engagements/{engagement}%3Fdeadline%3Dx"));

    // Another body's coordinator: a 404, as the API answers its token.
    let mut otto = sign_in(&app, &smtp, "otto@other.test").await;
    let page = otto.get(&format!("/engagements/{engagement}")).await;
    let token = app.token_of("otto@other.test", api::auth::Role::Coordinator, None, Some(&other_cb));
    let api = app.send_as(&token, reqwest::Method::GET, &format!("/api/v1/engagements/{engagement}"), None).await;
    assert_eq!((page.status, api.status), (404, 404));
    assert!(!page.body.contains(&engagement), "nothing of it is shown");

    // Its own coordinator sees it; a form without the token, with another's, or from another
    // site is refused and changes nothing.
    let mut ana = sign_in(&app, &smtp, "ana@cb.test").await;
    let page = ana.get(&format!("/engagements/{engagement}")).await;
    assert_eq!(page.status, 200);
    let path = format!("/engagements/{engagement}/events");
    let letter = [("event", "sign_engagement_letter"), ("signed_on", "2027-01-04")];
    let otto_csrf = otto.get("/").await.csrf();
    for (csrf, origin) in [("", None), (otto_csrf.as_str(), None), (page.csrf().as_str(), Some("https://evil.example"))]
    {
        let mut form = letter.to_vec();
        form.push(("csrf", csrf));
        let refused = match origin {
            Some(origin) => ana.post_from(origin, &path, &form).await,
            None => ana.post(&path, &form).await,
        };
        assert_eq!(refused.status, 403, "csrf {csrf:?} from {origin:?}");
    }
    assert_eq!(app.engagement(&engagement).await.str("state"), "cb_selection", "nothing was fired");
    // Another body's coordinator, with a valid token of its own form: the engagement is a 404,
    // as in the API, and nothing is fired.
    let mut form = letter.to_vec();
    form.push(("csrf", otto_csrf.as_str()));
    assert_eq!(otto.post(&path, &form).await.status, 404);
    assert_eq!(app.engagement(&engagement).await.str("state"), "cb_selection", "nothing was fired");
    let finding = uuid::Uuid::now_v7();
    let proposal = uuid::Uuid::now_v7();
    let cap = [("root_cause", "r"), ("correction", "c"), ("corrective_action", "a"), ("owner_email", "isms@acme.test")];
    let engagement_forms = [
        (format!("/engagements/{engagement}/findings/{finding}/corrective-action"), cap.to_vec()),
        (format!("/engagements/{engagement}/documents"), vec![("kind", "internal_audit"), ("reference", "dms://x")]),
        (format!("/engagements/{engagement}/proposals/{proposal}/selection"), vec![]),
    ];
    let forms = [
        ("/sign-out".to_owned(), vec![]),
        ("/calendar/rotate".to_owned(), vec![]),
        ("/sign-in".to_owned(), vec![("email", "ana@cb.test")]),
    ];
    for (path, form) in forms.iter().chain(&engagement_forms) {
        let anonymous = Visitor::new(&app).post(path, form).await.status;
        assert_eq!(anonymous, if path == "/sign-in" { 403 } else { 303 }, "{path} without a session");
        assert_eq!(ana.post(path, form).await.status, 403, "{path} without its token");
    }
    // A form missing a field is answered with a page that says so.
    let page = ana.get(&format!("/engagements/{engagement}")).await;
    let documents = format!("/engagements/{engagement}/documents");
    let incomplete = ana.post(&documents, &[("csrf", &page.csrf()), ("kind", "internal_audit")]).await;
    assert_eq!(incomplete.status, 422);
    assert!(incomplete.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(incomplete.body.contains("reference"), "{}", incomplete.body);
    // The SoA upload (a multipart form) too.
    let file = reqwest::multipart::Part::text("control,applicable\n5.1,yes\n").file_name("soa.csv");
    let upload = reqwest::multipart::Form::new().part("soa", file);
    let refused = ana.post_multipart(&format!("/engagements/{engagement}/statement-of-applicability"), upload).await;
    assert_eq!(refused.status, 403, "the SoA upload without its token");
    let readiness = app.get(&format!("/api/v1/engagements/{engagement}/stage1-readiness")).await.expect(200);
    assert_eq!(readiness.body["statement_of_applicability"]["controls_listed"], 0, "nothing was written");
}
on_both_databases!(pages_are_404_outside_the_scope_and_every_form_needs_its_csrf_token);

async fn events_and_corrective_actions_go_through_forms_and_refusals_show_the_rule(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let organization = app.create_organization(120).await;
    let cb = app.create_certification_body(true).await;
    let rival = app.create_certification_body(true).await;
    let (engagement, proposal) = app.engagement_with_proposal(&organization, &cb).await;
    app.propose(&engagement, &rival).await;
    add_person(&app, "ana@cb.test", "coordinator", json!({ "certification_body_id": cb })).await;
    add_person(&app, "isms@acme.test", "client_manager", json!({ "organization_id": organization })).await;

    // The client selects a body's proposal on the page.
    let mut client = sign_in(&app, &smtp, "isms@acme.test").await;
    let page = client.get(&format!("/engagements/{engagement}")).await;
    assert_eq!(page.body.matches("/selection\"").count(), 2, "both proposals can be chosen");
    let selected = client
        .post(&format!("/engagements/{engagement}/proposals/{proposal}/selection"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(selected.status, 303, "{}", selected.body);
    assert_eq!(app.engagement(&engagement).await.str("certification_body_id"), cb);

    // The coordinator signs the letter through its form: the state moves, the page says so.
    let mut ana = sign_in(&app, &smtp, "ana@cb.test").await;
    let page = ana.get(&format!("/engagements/{engagement}")).await;
    assert!(page.body.contains("id=\"event-sign_engagement_letter\""), "the allowed event has its form");
    let version = hidden(&page.body, "version").unwrap();
    let fired = ana
        .post(
            &format!("/engagements/{engagement}/events"),
            &[
                ("csrf", &page.csrf()),
                ("event", "sign_engagement_letter"),
                ("signed_on", &day0().to_string()),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(fired.status, 303, "{}", fired.body);
    let state = app.engagement(&engagement).await.str("state");
    assert_ne!(state, "cb_selection");
    let page = ana.get(&fired.location()).await;
    assert!(page.body.contains(&format!("id=\"state\">{state}<")), "the page shows the new state");
    assert!(page.body.contains("sign_engagement_letter"), "and the timeline the event");

    // A rule refuses: stage 1 ready without its documents. The page shows the rule's text.
    let stage1 = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    app.set_today(day(12));
    let page = ana.get(&format!("/engagements/{engagement}")).await;
    let refused = ana
        .post(
            &format!("/engagements/{engagement}/events"),
            &[("csrf", &page.csrf()), ("event", "record_stage1_outcome"), ("audit_id", &stage1), ("outcome", "ready")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("id=\"refusal\""), "the refusal is shown on the page");
    let api = app
        .post(
            &format!("/api/v1/engagements/{engagement}/events"),
            &json!({ "event": "record_stage1_outcome", "audit_id": stage1, "outcome": "ready" }),
        )
        .await;
    let detail = api.body["detail"].as_str().unwrap();
    assert!(
        refused.body.contains(&detail.replace('\'', "&#39;")) || refused.body.contains(detail),
        "the API's own words: {detail}"
    );
    assert_eq!(app.engagement(&engagement).await.str("state"), state, "nothing moved");

    // The client registers its documents and uploads its Statement of Applicability as a CSV
    // file; the page then says stage 1 can find it ready.
    let page = client.get(&format!("/engagements/{engagement}")).await;
    assert!(page.body.contains("Not ready yet."), "stage 1 readiness is shown");
    for kind in crate::helpers::STAGE1_DOCUMENTS {
        let reference = format!("dms://{kind}");
        let registered = client
            .post(
                &format!("/engagements/{engagement}/documents"),
                &[("csrf", &page.csrf()), ("kind", kind), ("reference", &reference)],
            )
            .await;
        assert_eq!(registered.status, 303, "{kind}: {}", registered.body);
    }
    let mut csv = String::from("control,applicable,justification\n");
    for control in entities::domain::soa::annex_a_controls() {
        let applicable = if control.control == "7.5" { "no" } else { "yes" };
        csv.push_str(&format!("{},{applicable},\"decided in the risk treatment plan, 2027\"\n", control.control));
    }
    let upload = |csv: String, csrf: String| {
        let file = reqwest::multipart::Part::text(csv).file_name("soa.csv").mime_str("text/csv").unwrap();
        reqwest::multipart::Form::new().text("csrf", csrf).part("soa", file)
    };
    let soa_path = format!("/engagements/{engagement}/statement-of-applicability");
    let unclear = client.post_multipart(&soa_path, upload("control,applicable\n5.1,maybe\n".into(), page.csrf())).await;
    assert_eq!(unclear.status, 422, "an unclear line is refused by its line");
    assert!(unclear.body.contains("soa line 2"), "{}", unclear.body);
    let uploaded = client.post_multipart(&soa_path, upload(csv, page.csrf())).await;
    assert_eq!(uploaded.status, 303, "{}", uploaded.body);
    let readiness = app.get(&format!("/api/v1/engagements/{engagement}/stage1-readiness")).await.expect(200);
    assert_eq!(readiness.body["ready"], true, "{}", readiness.body);
    assert!(client.get(&format!("/engagements/{engagement}")).await.body.contains("Ready: every required document"));

    // The client submits a corrective action for a minor finding through its form.
    app.fire(&engagement, json!({ "event": "record_stage1_outcome", "audit_id": stage1, "outcome": "ready" }))
        .await
        .expect(200);
    let stage2 = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    let finding = app.record_finding(&engagement, &stage2, "minor_nc", "A.8.13").await;
    let page = client.get(&format!("/engagements/{engagement}")).await;
    assert_eq!(page.status, 200);
    let action = format!("/engagements/{engagement}/findings/{finding}/corrective-action");
    assert!(page.body.contains(&action), "the client's form for the finding");
    assert!(!page.body.contains("id=\"event-request_decision\""), "no coordinator's event for the client");
    let submitted = client
        .post(
            &action,
            &[
                ("csrf", &page.csrf()),
                ("root_cause", "no owner for restore tests"),
                ("correction", "restore tested"),
                ("corrective_action", "quarterly restore test"),
                ("owner_email", "isms@acme.test"),
                ("evidence", "dms://restore-test.pdf"),
            ],
        )
        .await;
    assert_eq!(submitted.status, 303, "{}", submitted.body);
    let actions = app.get(&format!("/api/v1/engagements/{engagement}/corrective-actions")).await.expect(200).items();
    assert_eq!(actions.body.as_array().unwrap().len(), 1, "the corrective action is in");
    assert_eq!(actions.body[0]["evidence"], json!(["dms://restore-test.pdf"]));
}
on_both_databases!(events_and_corrective_actions_go_through_forms_and_refusals_show_the_rule);

async fn calendar_feeds_parse_as_icalendar_hold_only_the_callers_records_and_rotate(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let cb = app.engagement(&engagement).await.str("certification_body_id");
    app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day0() })).await.expect(200);
    let ours = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    let elsewhere = app.engagement_with_selected_proposal().await;
    app.fire(&elsewhere, json!({ "event": "sign_engagement_letter", "signed_on": day0() })).await.expect(200);
    let theirs = app.create_audit(&elsewhere, "stage1", day(10), day(11)).await;
    add_person(&app, "ana@cb.test", "coordinator", json!({ "certification_body_id": cb })).await;

    let mut ana = sign_in(&app, &smtp, "ana@cb.test").await;
    let home = ana.get("/").await;
    let feeds: Vec<String> = home
        .body
        .match_indices("class=\"subscribe\"")
        .map(|(at, _)| {
            let before = &home.body[..at];
            let href = before.rfind("href=\"").unwrap() + 6;
            before[href..].split('"').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(feeds.len(), 2, "a feed of the person's own and one of the body's");
    let path_of = |url: &str| format!("/calendar/{}", url.split("/calendar/").nth(1).unwrap());
    let all = path_of(feeds.iter().find(|f| f.contains("/all/")).unwrap());
    let feed = reqwest::get(format!("{}{all}", app.address)).await.unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let ics = feed.text().await.unwrap();
    assert!(ics.contains(&format!("UID:audit-{ours}@certflow")), "{ics}");
    assert!(!ics.contains(&theirs), "nothing of an engagement another body certifies");

    // Parsed back by a second implementation (Python's icalendar).
    let parsed = std::process::Command::new("python3")
        .args(["-c", "import sys, icalendar; c = icalendar.Calendar.from_ical(sys.stdin.read()); print(sorted(str(e['UID']) for e in c.walk('VEVENT')))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(ics.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3 with icalendar (pip install icalendar; .ci/run installs it)");
    assert!(parsed.status.success(), "{}", String::from_utf8_lossy(&parsed.stderr));
    let uids = String::from_utf8(parsed.stdout).unwrap();
    assert!(uids.contains(&format!("audit-{ours}@certflow")), "{uids}");

    // A key that is not the feed's: 404. Rotating ends the old address.
    let forged = format!("{}x.ics", all.trim_end_matches(".ics"));
    assert_eq!(reqwest::get(format!("{}{forged}", app.address)).await.unwrap().status(), 404);
    let rotated = ana.post("/calendar/rotate", &[("csrf", &home.csrf())]).await;
    assert_eq!(rotated.status, 303);
    assert_eq!(reqwest::get(format!("{}{all}", app.address)).await.unwrap().status(), 404, "the old address is gone");
    let home = ana.get("/").await;
    assert!(!home.body.contains(&all), "new addresses shown");
}
on_both_databases!(calendar_feeds_parse_as_icalendar_hold_only_the_callers_records_and_rotate);

async fn the_public_certificate_page_states_what_the_verification_states(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let engagement = app.certified_engagement().await;
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    let number = certificate.str("number");
    let verification = app.get(&format!("/api/v1/certificates/{number}/verification")).await.expect(200).body;

    // Anyone, without signing in.
    let page = reqwest::get(format!("{}/certificates/{number}", app.address)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Valid: this certificate is in force."), "{html}");
    for field in ["number", "status", "organization", "scope", "issued_on", "expires_on", "certification_body"] {
        let value = verification[field].as_str().unwrap();
        assert!(html.contains(value), "the page states the {field} ({value})");
    }
    let unknown = reqwest::get(format!("{}/certificates/NO-SUCH-NUMBER", app.address)).await.unwrap();
    assert_eq!(unknown.status(), 404);
}
on_both_databases!(the_public_certificate_page_states_what_the_verification_states);

async fn the_portfolio_counts_and_pages_each_list_on_the_server(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let cb = app.engagement(&engagement).await.str("certification_body_id");
    let elsewhere = app.engagement_with_selected_proposal().await;
    add_person(&app, "ana@cb.test", "coordinator", json!({ "certification_body_id": cb })).await;
    // 30 corrective actions six days overdue on the body's engagement, 3 on another body's.
    let today = app.clock.now().date_naive();
    let started = today - chrono::Duration::days(20);
    app.insert_due_deadlines(&engagement, 30, started).await;
    app.insert_due_deadlines(&elsewhere, 3, started).await;

    let mut ana = sign_in(&app, &smtp, "ana@cb.test").await;
    let home = ana.get("/").await;
    let overdue = home.body.split("id=\"overdue\"").nth(1).unwrap().split("</section>").next().unwrap().to_owned();
    assert!(overdue.contains("<span class=\"count\">30</span>"), "the body's 30, not the other's: {overdue}");
    let first: Vec<&str> = overdue.matches("?deadline=").collect();
    assert_eq!(first.len(), 25, "a page of 25");
    let more =
        overdue.split("href=\"").filter_map(|h| h.split('"').next()).find(|h| h.contains("section=overdue")).unwrap();
    let next = ana.get(&more.replace("&amp;", "&").replace("&#38;", "&")).await;
    assert_eq!(next.status, 200);
    let rest = next.body.split("id=\"overdue\"").nth(1).unwrap().split("</section>").next().unwrap().to_owned();
    assert_eq!(rest.matches("?deadline=").count(), 5, "the other 5 on the next page");
    assert!(!rest.contains("class=\"more\""), "and no page after it");
    let ids = |html: &str| -> Vec<String> {
        html.split("?deadline=").skip(1).map(|h| h.split('#').next().unwrap().to_owned()).collect()
    };
    let mut all = ids(&overdue);
    all.extend(ids(&rest));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30, "every deadline once across the pages");
    assert!(!next.body.contains("id=\"engagements\""), "a section alone");

    // The counts are kept between visits, but a change through the API shows at the next one.
    let states = |html: &str| html.split("class=\"states\"").nth(1).unwrap().split("</p>").next().unwrap().to_owned();
    let before = states(&home.body);
    let page_before = ana.get(&format!("/engagements/{engagement}")).await;
    assert_eq!(page_before.status, 200);
    let fired = app
        .fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": today, "include_pre_audit": true }))
        .await;
    assert_eq!(fired.status, 200, "{}", fired.body);
    let now_in = fired.str("state");
    assert!(!before.contains(&format!(">{now_in}: 1<")), "not yet in {now_in}: {before}");
    let after = states(&ana.get("/").await.body);
    assert!(after.contains(&format!(">{now_in}: 1<")), "the engagement counted in {now_in} at once: {after}");
    // So does its page, kept between visits too.
    let shown = format!("<strong id=\"state\">{now_in}</strong>");
    assert!(!page_before.body.contains(&shown), "not {now_in} before");
    let page_after = ana.get(&format!("/engagements/{engagement}")).await;
    assert!(page_after.body.contains(&shown), "its page shows {now_in} at once");
}
on_both_databases!(the_portfolio_counts_and_pages_each_list_on_the_server);
