//! The directory of people over the API: who may add, change and remove whom, one person per
//! address, a role only with the scope it needs, and a change of role or scope ending the
//! person's console sessions.

use api::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::console::{Visitor, app_with_mail, emailed_link, emails_to, sign_in};
use crate::helpers::Backend;
use crate::on_both_databases;

async fn coordinators_manage_their_own_body_s_people_and_the_rules_hold(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let body = app.create_certification_body(true).await;
    let other_body = app.create_certification_body(true).await;
    let organization = app.create_organization(50).await;
    let coordinator = app.token_of("ana@cb.test", Role::Coordinator, None, Some(&body));
    let auditor = app.token_of("aud@cb.test", Role::Auditor, None, Some(&body));
    let integration = app.token_of("sync", Role::Integration, None, Some(&body));
    let person = |email: &str, role: &str, body: &str| json!({ "email": email, "name": "Someone", "role": role, "certification_body_id": body });

    // A coordinator adds an auditor of its own body; not one of another body's, not a client.
    let added = app
        .send_as(&coordinator, Method::POST, "/api/v1/people", Some(&person("Lead@CB.test", "auditor", &body)))
        .await;
    let added = added.expect(201);
    assert_eq!(added.str("email"), "lead@cb.test", "addresses are kept in lower case");
    let elsewhere = app
        .send_as(&coordinator, Method::POST, "/api/v1/people", Some(&person("x@other.test", "auditor", &other_body)))
        .await;
    assert_eq!(elsewhere.expect(403).problem_type(), "forbidden");
    let client =
        json!({ "email": "isms@acme.test", "name": "Isla", "role": "client_manager", "organization_id": organization });
    app.send_as(&coordinator, Method::POST, "/api/v1/people", Some(&client)).await.expect(403);
    // Auditors and service accounts manage no one.
    for token in [&auditor, &integration] {
        app.send_as(token, Method::POST, "/api/v1/people", Some(&person("y@cb.test", "auditor", &body)))
            .await
            .expect(403);
    }
    // One person per address; a role only with its scope.
    let again = app
        .send_as(&coordinator, Method::POST, "/api/v1/people", Some(&person("lead@cb.test", "coordinator", &body)))
        .await;
    assert_eq!(again.expect(409).problem_type(), "person-exists");
    let no_scope = app.post("/api/v1/people", &json!({ "email": "z@cb.test", "name": "Z", "role": "auditor" })).await;
    assert_eq!(no_scope.expect(422).problem_type(), "role-does-not-fit-scope");
    let both = app
        .post("/api/v1/people", &json!({ "email": "z@cb.test", "name": "Z", "role": "auditor", "certification_body_id": body, "organization_id": organization }))
        .await;
    assert_eq!(both.expect(422).problem_type(), "validation-failed");
    let nowhere = app.post("/api/v1/people", &person("z@cb.test", "auditor", &uuid::Uuid::now_v7().to_string())).await;
    assert_eq!(nowhere.expect(422).problem_type(), "validation-failed");

    // Each body reads its own people only; the other body's coordinator gets a 404.
    let id = added.str("id");
    let stranger = app.token_of("otto@other.test", Role::Coordinator, None, Some(&other_body));
    app.send_as(&stranger, Method::GET, &format!("/api/v1/people/{id}"), None).await.expect(404);
    app.send_as(&stranger, Method::DELETE, &format!("/api/v1/people/{id}"), None).await.expect(404);
    let listed = app.send_as(&auditor, Method::GET, "/api/v1/people", None).await.expect(200).items();
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.body);

    // A change of role ends the person's sessions; a stale version is refused.
    let mut lead = sign_in(&app, &smtp, "lead@cb.test").await;
    assert_eq!(lead.get("/").await.status, 200);
    let mut promoted = person("lead@cb.test", "coordinator", &body);
    promoted["version"] = json!(7);
    app.send_as(&coordinator, Method::PUT, &format!("/api/v1/people/{id}"), Some(&promoted)).await.expect(412);
    promoted["version"] = json!(1);
    let changed =
        app.send_as(&coordinator, Method::PUT, &format!("/api/v1/people/{id}"), Some(&promoted)).await.expect(200);
    assert_eq!((changed.str("role"), changed.body["version"].as_i64()), ("coordinator".into(), Some(2)));
    assert_eq!(lead.get("/").await.status, 303, "signed out by the change of role");

    // Removed: their sessions end and their address signs in no more.
    let mut lead = sign_in(&app, &smtp, "lead@cb.test").await;
    app.send_as(&coordinator, Method::DELETE, &format!("/api/v1/people/{id}"), None).await.expect(204);
    assert_eq!(lead.get("/").await.status, 303);
    app.send_as(&coordinator, Method::GET, &format!("/api/v1/people/{id}"), None).await.expect(404);
    // (A link asked for a known person next arrives; none came for the removed one before it.)
    app.send_as(&coordinator, Method::POST, "/api/v1/people", Some(&person("kim@cb.test", "auditor", &body)))
        .await
        .expect(201);
    let mut visitor = Visitor::new(&app);
    let form = visitor.get("/sign-in").await;
    let before = emails_to(&smtp, "lead@cb.test");
    visitor.post("/sign-in", &[("email", "lead@cb.test"), ("csrf", &form.csrf())]).await;
    visitor.post("/sign-in", &[("email", "kim@cb.test"), ("csrf", &form.csrf())]).await;
    emailed_link(&smtp, "kim@cb.test", 0).await;
    assert_eq!(emails_to(&smtp, "lead@cb.test"), before, "no link for a removed person");
}
on_both_databases!(coordinators_manage_their_own_body_s_people_and_the_rules_hold);
