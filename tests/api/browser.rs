//! The console in a real browser: Debian's Chromium, headless, driven through chromedriver
//! (WebDriver). A client follows a deadline email's link, signs in from the link in a real email
//! and lands on the engagement at that deadline; a coordinator opens the portfolio, fires an event
//! through its form and sees the new state, then sees a refusal's message; the client submits a
//! corrective action. Every assertion is on what the person sees; every page loads nothing from
//! anywhere but the server. The screenshots land in `CONSOLE_SCREENSHOTS` (default: a temporary
//! folder), and the README shows those of a run.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::json;
use thirtyfour::prelude::*;

use crate::console::{add_person, emailed_link, emails_to};
use crate::helpers::{Backend, a_day_already_due_by_the_wall_clock, day, spawn_app_with, wait_at_most};
use crate::smtp::SmtpSink;

/// chromedriver, stopped with the test.
struct Chromedriver(Child, u16);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_chromedriver() -> Chromedriver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "chromedriver (Debian's chromium-driver: apt-get install -y chromium chromium-driver; .ci/run installs it)",
        );
    let driver = Chromedriver(child, port);
    wait_at_most(30, "chromedriver listens", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;
    driver
}

async fn browser(chromedriver: &Chromedriver) -> WebDriver {
    browser_of(chromedriver, None).await
}

/// A headless Chromium; with `phone`, one that emulates a phone of that width (CSS pixels).
async fn browser_of(chromedriver: &Chromedriver, phone: Option<u32>) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary("/usr/bin/chromium").unwrap();
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"] {
        caps.add_arg(arg).unwrap();
    }
    if let Some(width) = phone {
        let metrics = json!({ "deviceMetrics": { "width": width, "height": 844, "pixelRatio": 3.0, "mobile": true, "touch": true } });
        caps.add_experimental_option("mobileEmulation", metrics).unwrap();
    }
    WebDriver::new(format!("http://127.0.0.1:{}", chromedriver.1), caps).await.expect("a headless Chromium")
}

/// Every resource the current page loaded, and the page itself, came from `origin`.
async fn nothing_loaded_from_elsewhere(driver: &WebDriver, origin: &str) {
    let loaded = driver
        .execute(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    let names: Vec<String> = loaded.convert().unwrap();
    assert!(names.iter().any(|n| n.contains("/assets/console.css")), "the page loaded its stylesheet: {names:?}");
    for name in names {
        assert!(name.starts_with(origin), "{name} is not from the server");
    }
}

async fn text_of(driver: &WebDriver, css: &str) -> String {
    match driver.query(By::Css(css)).first().await {
        Ok(element) => element.text().await.unwrap(),
        Err(error) => {
            let url = driver.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let source = driver.source().await.unwrap_or_default();
            panic!("{css} is not on {url}: {error}\n{source}")
        }
    }
}

/// Clicks the element at `css` (a link or a form's button) and waits for the next page to load.
async fn click_and_load(driver: &WebDriver, css: &str) {
    driver.execute("window.certflowOldPage = true;", vec![]).await.unwrap();
    driver.find(By::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    wait_at_most(30, "the next page", || async {
        let loaded = driver
            .execute("return window.certflowOldPage === undefined && document.readyState === 'complete';", vec![])
            .await;
        loaded.ok().and_then(|r| r.convert::<bool>().ok()).unwrap_or(false)
    })
    .await;
}

/// Signs `email` in from the sign-in page the browser is on, with the link the email carries.
async fn sign_in_here(driver: &WebDriver, smtp: &SmtpSink, email: &str) {
    let before = emails_to(smtp, email);
    driver.find(By::Id("email")).await.unwrap().send_keys(email).await.unwrap();
    click_and_load(driver, "form button[type=submit]").await;
    assert!(text_of(driver, "#sent").await.contains("on its way"), "the person is told the link is coming");
    let link = emailed_link(smtp, email, before).await;
    let base = driver.current_url().await.unwrap();
    driver.goto(format!("{}{link}", base.origin().ascii_serialization())).await.unwrap();
    click_and_load(driver, "#continue").await;
}

async fn sign_out(driver: &WebDriver) {
    click_and_load(driver, "nav form button").await;
    assert!(driver.current_url().await.unwrap().path().starts_with("/sign-in"));
}

fn screenshots() -> PathBuf {
    let folder = std::env::var_os("CONSOLE_SCREENSHOTS")
        .map_or_else(|| std::env::temp_dir().join("certflow-screenshots"), PathBuf::from);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

#[tokio::test]
async fn people_act_on_the_console_in_a_real_browser() {
    // The server on a known port, so the links in its emails open in the browser.
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let smtp = SmtpSink::start();
    let smtp_port = smtp.port.to_string();
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("PUBLIC_BASE_URL", &origin),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", &smtp_port),
            ("SMTP_SECURITY", "none"),
        ],
    )
    .await;
    let engagement = app.engagement_with_selected_proposal().await;
    let view = app.engagement(&engagement).await.body;
    let cb = view["certification_body_id"].as_str().unwrap().to_owned();
    let organization = view["organization_id"].as_str().unwrap().to_owned();
    add_person(&app, "ana@cb.test", "coordinator", json!({ "certification_body_id": cb })).await;
    // The owner of the deadline the worker reminds of is the organization's manager.
    add_person(&app, "owner0@acme.test", "client_manager", json!({ "organization_id": organization })).await;

    // A real reminder email, sent by the worker through the SMTP server.
    let today = a_day_already_due_by_the_wall_clock();
    app.set_today(today);
    app.insert_due_deadlines(&engagement, 1, today).await;
    let worker = app.spawn_worker(smtp.port).await;
    worker.tick().await;
    wait_at_most(60, "the reminder", || async { emails_to(&smtp, "owner0@acme.test") == 1 }).await;
    let reminder = smtp
        .received()
        .into_iter()
        .find(|m| m.to == ["owner0@acme.test"])
        .unwrap()
        .data
        .replace("=\r\n", "")
        .replace("=3D", "=");
    let at =
        reminder.find(&format!("{origin}/engagements/{engagement}?deadline=")).expect("the email links to its page");
    let act_on_it: String =
        reminder[at..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<').collect();
    let deadline = act_on_it.split("deadline=").nth(1).unwrap().split('#').next().unwrap().to_owned();

    let chromedriver = start_chromedriver().await;
    let driver = browser(&chromedriver).await;
    let outcome = async {
        // The client follows "Act on it": sign in first, then the engagement at that deadline.
        driver.goto(&act_on_it).await?;
        assert!(driver.current_url().await?.path().starts_with("/sign-in"), "not signed in: the sign-in page first");
        sign_in_here(&driver, &smtp, "owner0@acme.test").await;
        let row = driver.query(By::Id(format!("deadline-{deadline}"))).first().await?;
        assert_eq!(row.attr("class").await?.as_deref(), Some("highlight"), "the page opens at the deadline");
        assert!(driver.current_url().await?.path().ends_with(&engagement));
        nothing_loaded_from_elsewhere(&driver, &origin).await;
        sign_out(&driver).await;

        // The coordinator's portfolio, then the engagement: an event fired through its form.
        sign_in_here(&driver, &smtp, "ana@cb.test").await;
        assert_eq!(text_of(&driver, "h1").await, "Portfolio");
        assert!(text_of(&driver, "#engagements").await.contains("cb_selection: 1"), "engagements by state");
        nothing_loaded_from_elsewhere(&driver, &origin).await;
        driver.screenshot(&screenshots().join("portfolio.png")).await?;
        click_and_load(&driver, &format!("#engagements a[href='/engagements/{engagement}']")).await;
        assert_eq!(text_of(&driver, "#state").await, "cb_selection");
        driver.find(By::Css("#event-sign_engagement_letter summary")).await?.click().await?;
        driver
            .execute(
                "document.getElementById('sign_engagement_letter-signed_on').value = arguments[0];",
                vec![json!(today.to_string())],
            )
            .await?;
        click_and_load(&driver, "#event-sign_engagement_letter button[type=submit]").await;
        assert_eq!(text_of(&driver, "#fired").await, "Done: Sign engagement letter.");
        let state = text_of(&driver, "#state").await;
        assert_ne!(state, "cb_selection", "the new state is shown");
        assert_eq!(app.engagement(&engagement).await.str("state"), state, "and it is the engagement's");

        // A refusal's message: stage 1 found ready before its documents are in.
        let stage1 = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
        driver.refresh().await?;
        driver.find(By::Css("#event-record_stage1_outcome summary")).await?.click().await?;
        let select = driver.find(By::Id("record_stage1_outcome-audit_id")).await?;
        assert!(select.inner_html().await?.contains(&stage1), "the audit is a choice");
        driver.find(By::Id("record_stage1_outcome-outcome")).await?.send_keys("ready").await?;
        click_and_load(&driver, "#event-record_stage1_outcome button[type=submit]").await;
        let refusal = text_of(&driver, "#refusal").await;
        assert!(refusal.starts_with("Refused"), "{refusal}");
        assert_eq!(text_of(&driver, "#state").await, state, "nothing moved");
        sign_out(&driver).await;

        // The client submits the corrective action of a minor finding.
        app.prepare_stage1_documents(&engagement).await;
        app.fire(&engagement, json!({ "event": "record_stage1_outcome", "audit_id": stage1, "outcome": "ready" }))
            .await
            .expect(200);
        let stage2 = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
        let finding = app.record_finding(&engagement, &stage2, "minor_nc", "A.8.13").await;
        driver.goto(format!("{origin}/engagements/{engagement}")).await?;
        sign_in_here(&driver, &smtp, "owner0@acme.test").await;
        for (id, text) in [
            ("rc", "no owner for restore tests"),
            ("co", "restore tested"),
            ("ca", "quarterly restore test"),
            ("ow", "owner0@acme.test"),
        ] {
            driver.find(By::Id(format!("{id}-{finding}"))).await?.send_keys(text).await?;
        }
        click_and_load(&driver, &format!("#finding-{finding} button[type=submit]")).await;
        let shown = text_of(&driver, &format!("#finding-{finding}")).await;
        assert!(shown.contains("Corrective action: quarterly restore test"), "{shown}");
        nothing_loaded_from_elsewhere(&driver, &origin).await;
        driver.screenshot(&screenshots().join("engagement.png")).await?;

        // On a phone the same page reads without scrolling sideways (its session, another device's).
        let session = driver.get_named_cookie("certflow_session").await?;
        let phone = browser_of(&chromedriver, Some(390)).await;
        phone.goto(format!("{origin}/sign-in")).await?;
        phone.add_cookie(session).await?;
        phone.goto(format!("{origin}/engagements/{engagement}")).await?;
        let widths = phone
            .execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![])
            .await?
            .convert::<Vec<u32>>()?;
        phone.screenshot(&screenshots().join("engagement-phone.png")).await?;
        phone.quit().await?;
        assert!(widths[0] <= widths[1], "the page is {} px wide on a {} px screen", widths[0], widths[1]);

        WebDriverResult::Ok(())
    }
    .await;
    let quit = driver.quit().await;
    outcome.expect("the browser session");
    quit.expect("the browser quits");
    drop(worker);
    drop(chromedriver);
}
