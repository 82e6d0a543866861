//! Every child list of an engagement is paged like the top-level lists (`limit` up to 200 and an
//! opaque cursor), and an engagement's view embeds at most ten open deadlines, with a link to all.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, day, spawn_app};
use crate::on_both_databases;

/// Every item of the list at `path`, read `limit` at a time, and how many pages it took.
async fn read_all(app: &TestApp, path: &str, limit: u64) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let mut page_path = format!("{path}?limit={limit}");
        if let Some(cursor) = &cursor {
            page_path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get(&page_path).await.expect(200);
        let got = page.body["items"].as_array().unwrap().clone();
        assert!(got.len() as u64 <= limit, "{path}: a page holds at most its limit");
        items.extend(got);
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
    }
}

async fn child_lists_are_paged_and_an_engagement_embeds_at_most_ten_open_deadlines(backend: Backend) {
    // Arrange: a stage 2 audit with five findings; twelve more open deadlines on one day.
    let app = spawn_app(backend).await;
    let (engagement, audit, _) = app.stage2_with_finding("ofi", "A.5.1").await;
    for n in 2..=5 {
        app.record_finding(&engagement, &audit, "ofi", &format!("A.5.{n}")).await;
    }
    app.insert_due_deadlines(&engagement, 12, day(50)).await;
    let base = format!("/api/v1/engagements/{engagement}");

    // Act / Assert: each list read two at a time gives every item once, in its order.
    let (findings, pages) = read_all(&app, &format!("{base}/findings"), 2).await;
    let references: Vec<&str> = findings.iter().map(|f| f["reference"].as_str().unwrap()).collect();
    assert_eq!((references, pages), (vec!["A.5.1", "A.5.2", "A.5.3", "A.5.4", "A.5.5"], 3));
    let (deadlines, _) = read_all(&app, &format!("{base}/deadlines"), 5).await;
    let (all_at_once, _) = read_all(&app, &format!("{base}/deadlines"), 200).await;
    assert_eq!(deadlines, all_at_once, "paging changes nothing but the pages");
    let ids: HashSet<&str> = deadlines.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), deadlines.len(), "no deadline twice across pages of equal due dates");
    let due: Vec<&str> = deadlines.iter().map(|d| d["due_on"].as_str().unwrap()).collect();
    assert!(due.windows(2).all(|w| w[0] <= w[1]), "soonest due first: {due:?}");
    let (history, _) = read_all(&app, &format!("{base}/history"), 3).await;
    let (whole_history, _) = read_all(&app, &format!("{base}/history"), 200).await;
    assert_eq!(history, whole_history);
    for list in ["audits", "corrective-actions", "decisions", "documents", &format!("audits/{audit}/follow-ups")] {
        let page = app.get(&format!("{base}/{list}?limit=1")).await.expect(200);
        assert!(page.body["items"].is_array(), "{list} is a page: {}", page.body);
    }

    // Assert: the proposals compared, cheapest first, a page at a time.
    let organization = app.create_organization(40).await;
    let (bidding, _) = app.engagement_with_proposal(&organization, &app.create_certification_body(true).await).await;
    app.propose(&bidding, &app.create_certification_body(true).await).await;
    let proposals = format!("/api/v1/engagements/{bidding}/proposals");
    let first = app.get(&format!("{proposals}?limit=1")).await.expect(200);
    let cursor = first.body["next_cursor"].as_str().expect("a second page").to_owned();
    let second = app.get(&format!("{proposals}?limit=1&cursor={cursor}")).await.expect(200);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let (a, b) = (&first.body["proposals"][0], &second.body["proposals"][0]);
    assert_ne!(a["id"], b["id"]);
    assert!(a["price_minor"].as_i64() <= b["price_minor"].as_i64(), "cheapest first: {a} {b}");

    // Assert: limits and cursors are checked.
    for bad in ["findings?limit=0", "findings?limit=201", "deadlines?cursor=garbage", "history?cursor=AAAA"] {
        let refused = app.get(&format!("{base}/{bad}")).await;
        assert_eq!((refused.status, refused.problem_type().as_str()), (400, "invalid-query"), "{bad}");
    }

    // Assert: the view embeds the ten soonest open deadlines and says how many there are.
    let view = app.engagement(&engagement).await.expect(200);
    let embedded = view.body["open_deadlines"].as_array().unwrap();
    let open = deadlines.iter().filter(|d| d["status"] == "open").count();
    assert!(open > 10, "{open} open deadlines");
    assert_eq!((embedded.len(), view.body["open_deadlines_total"].as_u64()), (10, Some(open as u64)));
    assert_eq!(view.body["deadlines_href"], json!(format!("{base}/deadlines")));
}
on_both_databases!(child_lists_are_paged_and_an_engagement_embeds_at_most_ten_open_deadlines);
