//! The whole cycle over HTTP: CB selection to certificate, two surveillance audits, recertification.

use chrono::NaiveDate;
use serde_json::json;

use crate::helpers::{ADMIN, Backend, day, spawn_app};
use crate::on_both_databases;

fn date(value: &serde_json::Value) -> NaiveDate {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a date: {value}"))
}

async fn a_certificate_is_issued_surveilled_twice_and_renewed_from_its_old_expiry(backend: Backend) {
    // Arrange: an engagement certified on day 44 (stage 2 on days 40–43, no NC).
    let app = spawn_app(backend).await;
    let engagement = app.certified_engagement().await;

    // Assert: the certificate runs three years from the decision; surveillance is due within 12 months.
    let view = app.engagement(&engagement).await;
    assert_eq!(view.str("state"), "certified");
    assert_eq!(
        view.body["allowed_events"],
        json!([
            "start_surveillance",
            "start_recertification",
            "suspend",
            "withdraw",
            "expire",
            "reduce_scope",
            "amend_certificate"
        ])
    );
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(date(&certificate.body["issued_on"]), day(44));
    assert_eq!(date(&certificate.body["expires_on"]), NaiveDate::from_ymd_opt(2029, 2, 18).unwrap());
    let deadlines: Vec<(String, NaiveDate)> = view.body["open_deadlines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().to_owned(), date(&d["due_on"])))
        .collect();
    assert_eq!(
        deadlines,
        [
            ("surveillance_due".to_owned(), NaiveDate::from_ymd_opt(2027, 2, 18).unwrap()),
            ("certificate_expiry".to_owned(), NaiveDate::from_ymd_opt(2029, 2, 18).unwrap()),
        ]
    );

    // Anyone can verify the certificate by its number, without a token.
    let number = certificate.str("number");
    let public = app
        .reply(app.client.get(format!("{}/api/v1/certificates/{number}/verification", app.address)))
        .await
        .expect(200);
    assert_eq!((public.body["status"].as_str(), public.body["valid"].as_bool()), (Some("active"), Some(true)));
    assert_eq!(public.str("organization"), "Acme Data Ltd");
    assert_eq!(public.body["accredited"], true);

    // Act: two surveillance audits, each within its year.
    for (year, start) in [(1_u64, 300_u64), (2, 660)] {
        app.set_today(day(start));
        app.fire(&engagement, json!({ "event": "start_surveillance" })).await.expect(200);
        let audit = app.create_audit(&engagement, "surveillance", day(start), day(start + 1)).await;
        app.set_today(day(start + 2));
        let after =
            app.fire(&engagement, json!({ "event": "complete_surveillance", "audit_id": audit })).await.expect(200);
        assert_eq!(after.str("state"), "certified", "surveillance {year}");
        let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
        assert_eq!(certificate.body["surveillances_completed"], year, "surveillance {year}");
    }
    let third = app.fire(&engagement, json!({ "event": "start_surveillance" })).await.expect(422);
    assert_eq!(third.body["violations"][0]["code"], "surveillance_cycle_complete");

    // Recertification: starts at stage 2 depth, decided before expiry; the new term runs from the old expiry.
    app.set_today(NaiveDate::from_ymd_opt(2028, 11, 1).unwrap());
    app.fire(&engagement, json!({ "event": "start_recertification" })).await.expect(200);
    let recertification = app
        .create_audit(
            &engagement,
            "recertification",
            NaiveDate::from_ymd_opt(2028, 11, 1).unwrap(),
            NaiveDate::from_ymd_opt(2028, 11, 3).unwrap(),
        )
        .await;
    app.set_today(NaiveDate::from_ymd_opt(2028, 11, 4).unwrap());
    let decision = app
        .fire(&engagement, json!({ "event": "complete_recertification", "audit_id": recertification }))
        .await
        .expect(200);
    assert_eq!(decision.str("state"), "certification_decision");
    app.set_today(NaiveDate::from_ymd_opt(2028, 12, 1).unwrap());
    app.grant(&engagement).await.expect(200);
    let renewed = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(renewed.str("number"), number, "the certificate keeps its number");
    assert_eq!(date(&renewed.body["expires_on"]), NaiveDate::from_ymd_opt(2032, 2, 18).unwrap());
    assert_eq!(renewed.body["surveillances_completed"], 0);
    assert_eq!(renewed.body["first_issued_on"], "2026-02-18", "the first certification's date stays");

    // The history has every transition, in order, with who and from/to.
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let transitions: Vec<(String, String, String)> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["from_state"].is_string())
        .map(|h| {
            (
                h["action"].as_str().unwrap().into(),
                h["from_state"].as_str().unwrap().into(),
                h["to_state"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("sign_engagement_letter", "cb_selection", "stage1"),
        ("record_stage1_outcome", "stage1", "stage2"),
        ("complete_stage2", "stage2", "certification_decision"),
        ("grant_certification", "certification_decision", "certified"),
        ("start_surveillance", "certified", "surveillance"),
        ("complete_surveillance", "surveillance", "certified"),
        ("start_surveillance", "certified", "surveillance"),
        ("complete_surveillance", "surveillance", "certified"),
        ("start_recertification", "certified", "recertification"),
        ("complete_recertification", "recertification", "certification_decision"),
        ("grant_certification", "certification_decision", "certified"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, f, t)| ((*a).into(), (*f).into(), (*t).into())).collect();
    assert_eq!(transitions, expected);
    for entry in history.body.as_array().unwrap() {
        let decision = entry["action"] == "grant_certification";
        let actor = if decision { "decision_maker@certflow.test" } else { ADMIN };
        assert_eq!(entry["actor"], actor, "the history names who acted: {entry}");
    }
    let decisions = app.get(&format!("/api/v1/engagements/{engagement}/decisions")).await.expect(200).items();
    assert_eq!(decisions.body.as_array().unwrap().len(), 2);
    for decision in decisions.body.as_array().unwrap() {
        assert_eq!(decision["decided_by"], "decision_maker@certflow.test", "the caller decided: {decision}");
    }
}
on_both_databases!(a_certificate_is_issued_surveilled_twice_and_renewed_from_its_old_expiry);

async fn a_pre_audit_can_precede_stage1_and_never_issues_a_certificate(backend: Backend) {
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let view = app
        .fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0), "include_pre_audit": true }))
        .await
        .expect(200);
    assert_eq!(view.str("state"), "pre_audit");
    let pre_audit = app.create_audit(&engagement, "pre_audit", day(3), day(4)).await;
    app.set_today(day(5));
    let view = app.fire(&engagement, json!({ "event": "complete_pre_audit", "audit_id": pre_audit })).await.expect(200);
    assert_eq!(view.str("state"), "stage1");
    app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(404);
}
on_both_databases!(a_pre_audit_can_precede_stage1_and_never_issues_a_certificate);

async fn an_unaccredited_cb_needs_the_organizations_explicit_acceptance(backend: Backend) {
    let app = spawn_app(backend).await;
    let organization = app.create_organization(8).await;
    let cb = app.create_certification_body(false).await;
    let engagement = app
        .post("/api/v1/engagements", &json!({ "organization_id": organization, "manager_email": "isms@acme.test" }))
        .await
        .expect(201)
        .str("id");
    let proposal = app
        .post(
            &format!("/api/v1/engagements/{engagement}/proposals"),
            &json!({ "certification_body_id": cb, "price_minor": 1, "currency": "EUR", "audit_days": 4.0 }),
        )
        .await
        .expect(201);
    assert_eq!(proposal.body["days_versus_estimate"], -1.0, "8 persons need 5 auditor days");
    app.select_proposal(&engagement, &proposal.str("id")).await;

    let refused =
        app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0) })).await.expect(422);
    assert_eq!(refused.body["violations"][0]["code"], "certification_body_not_accredited");

    let mut details = app.get(&format!("/api/v1/organizations/{organization}")).await.expect(200).body;
    for server_owned in ["id", "version", "created_at", "updated_at"] {
        details.as_object_mut().unwrap().remove(server_owned);
    }
    details["accepts_unaccredited_cb"] = json!(true);
    app.put(&format!("/api/v1/organizations/{organization}"), &details).await.expect(200);
    app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0) })).await.expect(200);
}
on_both_databases!(an_unaccredited_cb_needs_the_organizations_explicit_acceptance);
