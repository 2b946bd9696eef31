//! The web console in a real browser: headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, installed by
//! `.ci/run`) against the real server on loopback. Screenshots of the main
//! pages go to `<target>/tmp/console-screenshots/` for review.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use sluice_client::Client;
use sluice_types::Role;

use crate::{PURPOSE, Platform, agreement, pums_descriptor, with_pums};

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is not installed: .ci/run installs Debian's chromium and chromium-driver",
            );
        // Owned (killed and waited for on drop) before anything can fail.
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .is_ok()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start on port {port}");
    }

    /// A fresh headless browser window of 1280×800 (its own cookies).
    async fn browser(&self) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,800"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session in headless Chromium")
    }
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed: .ci/run installs Debian's chromium")
}

/// The text of `css` once it holds what `want` accepts, polled for up to
/// 30 s: pages change under the test (navigation, live updates), so an
/// element found may go stale or still be the previous page's.
async fn text_when(b: &Browser, css: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(element) = b.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if want(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{css} on {:?} never became what the test waits for; last {last:?}\n{}",
        b.current_url().await,
        b.source().await.unwrap_or_default()
    );
}

/// The text of `css` on the page now shown (waiting for it to appear).
async fn text(b: &Browser, css: &str) -> String {
    text_when(b, css, |_| true).await
}

async fn sign_in(b: &Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/console/")).await.unwrap();
    // Not signed in: the console sends the browser to sign in.
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/sign-in")
    );
    type_into(b, "#token", token).await;
    click(b, "form button[type=submit]").await;
    text_when(b, "h1", |t| t == "Sluice console").await;
}

async fn click(b: &Browser, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(b: &Browser, css: &str, text: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn screenshot(b: &Browser, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = b.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The session cookie a browser holds.
async fn session_cookie(b: &Browser) -> String {
    let cookie = b.get_named_cookie("sluice_session").await.unwrap();
    format!("sluice_session={}", cookie.value())
}

async fn user(p: &Platform, name: &str, role: Role) -> (Client, String) {
    let created = p.admin.create_user(name, role).await.unwrap();
    (p.admin.with_token(created.token.clone()), created.token)
}

#[tokio::test]
async fn a_researcher_composes_a_job_a_reviewer_approves_it_and_the_release_verifies() {
    let p = with_pums().await;
    let base = p.url.clone();
    let (carol, carol_token) = user(&p, "carol", Role::User).await;
    let carol_agreement = agreement(&carol, &p.provider, &["pums"], 100.0).await;
    let (_, reviewer_token) = user(&p, "rev1", Role::Reviewer).await;
    let (_, dave_token) = user(&p, "dave", Role::User).await;
    p.provider.set_review_policy("pums", 1).await.unwrap();
    // A title with markup: shown as text, never as markup.
    // (Titles may not hold slashes, so no closing tags.)
    let markup = "<b>Bold <img src=x onerror=alert(1)> <script>alert(2) & co";
    let mut d = pums_descriptor("marked", "unconditional");
    d.dataset.title = markup.into();
    p.provider.create_dataset(&d).await.unwrap();

    let driver = Driver::start().await;
    let researcher = driver.browser().await;
    sign_in(&researcher, &base, &carol_token).await;
    screenshot(&researcher, "home").await;

    // The session cookie: HttpOnly, SameSite=Strict, scoped to the console.
    let cookie = researcher.get_named_cookie("sluice_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_eq!(cookie.path(), Some("/console"));

    // The catalog shows the markup as text.
    researcher
        .goto(&format!("{base}/console/datasets?q=Bold"))
        .await
        .unwrap();
    assert_eq!(text(&researcher, "tbody td a").await, markup);
    assert!(
        researcher
            .find_all(Locator::Css("main b, main img, main script"))
            .await
            .unwrap()
            .is_empty()
    );
    researcher
        .goto(&format!("{base}/console/datasets"))
        .await
        .unwrap();
    screenshot(&researcher, "catalog").await;
    researcher
        .goto(&format!("{base}/console/datasets/pums"))
        .await
        .unwrap();
    let page = text(&researcher, "main").await;
    assert!(
        page.contains("My budget") && page.contains("remaining ε"),
        "{page}"
    );
    screenshot(&researcher, "dataset").await;

    // Compose: the estimate comes in place (htmx under the strict CSP).
    researcher
        .goto(&format!("{base}/console/jobs/new"))
        .await
        .unwrap();
    let manifest = format!(
        "version = 1\ntitle = \"Income by sex\"\npurpose = \"{PURPOSE}\"\nagreement = [\"{carol_agreement}\"]\ndatasets = [\"pums\"]\n\n[job]\nkind = \"sql\"\nquery = \"SELECT sex, COUNT(*) AS people, AVG(income) AS mean_income FROM pums GROUP BY sex\"\n\n[privacy]\nepsilon = 1.0\n"
    );
    let editor = researcher.find(Locator::Css("#manifest")).await.unwrap();
    editor.clear().await.unwrap();
    editor.send_keys(&manifest).await.unwrap();
    click(&researcher, "#estimate-button").await;
    let estimate = text_when(&researcher, "#estimate", |t| t.contains("Accepted")).await;
    assert!(estimate.contains("spend exactly ε 1"), "{estimate}");
    assert!(estimate.contains("mean_income"), "{estimate}");
    // Still the composer: the estimate replaced a part of the page only.
    assert!(
        researcher
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/jobs/new")
    );
    screenshot(&researcher, "compose").await;
    click(&researcher, "main form button:not(#estimate-button)").await;
    text_when(&researcher, "#job-status .badge", |t| {
        t == "awaiting_review"
    })
    .await;
    let job_url = researcher.current_url().await.unwrap();
    let job_id = job_url.path().rsplit('/').next().unwrap().to_owned();
    screenshot(&researcher, "job").await;

    // The reviewer approves from the review page, bound to the digest.
    let reviewer = driver.browser().await;
    sign_in(&reviewer, &base, &reviewer_token).await;
    reviewer
        .goto(&format!("{base}/console/reviews"))
        .await
        .unwrap();
    reviewer
        .find(Locator::LinkText(&job_id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(&reviewer, "#manifest", |t| t.contains("AVG(income)")).await;
    screenshot(&reviewer, "review").await;
    type_into(&reviewer, "#reason", "aggregates only, bounded").await;
    click(&reviewer, "button[value=approve]").await;
    text_when(&reviewer, "main", |t| {
        t.contains("Nothing awaits your review")
    })
    .await;

    // The researcher's open job page turns to released by itself (the
    // job's event stream), then the release shows values, intervals, a
    // chart and a verified signature.
    let released = researcher
        .wait()
        .at_most(Duration::from_secs(180))
        .for_element(Locator::Css("#job-status .badge.released"))
        .await;
    assert!(
        released.is_ok(),
        "the job page did not show the release: {}",
        text(&researcher, "#job-status").await
    );
    researcher
        .find(Locator::LinkText("Open the release"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(&researcher, "#signature", |t| {
        t.contains("verified with the platform key")
    })
    .await;
    let table = text(&researcher, "#release-table").await;
    assert!(
        table.contains("people") && table.contains(" to "),
        "{table}"
    );
    assert_eq!(
        researcher
            .find_all(Locator::Css("svg.chart rect"))
            .await
            .unwrap()
            .len(),
        2,
        "one bar per sex"
    );
    assert!(
        text(&researcher, "main")
            .await
            .contains("via the Sluice public-data platform")
    );
    screenshot(&researcher, "release").await;

    // Over plain HTTP with the researcher's cookie: headers, CSRF, downloads.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let carol_cookie = session_cookie(&researcher).await;
    for page in [
        "/console/",
        "/console/datasets",
        "/console/datasets/pums",
        "/console/jobs",
        "/console/jobs/new",
        &format!("/console/jobs/{job_id}"),
        &format!("/console/jobs/{job_id}/release"),
    ] {
        let r = http
            .get(format!("{base}{page}"))
            .header("cookie", &carol_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{page}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let html = r.text().await.unwrap();
        // No inline script and no inline handlers: the CSP needs none.
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(open.contains("src="), "{page}: inline script");
        }
        assert!(
            !html.contains(" onclick=") && !html.contains(" onload="),
            "{page}"
        );
        assert!(html.len() <= 100 * 1024, "{page}: {} bytes", html.len());
    }
    let signed = http
        .get(format!("{base}/console/jobs/{job_id}/release.json"))
        .header("cookie", &carol_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let release: sluice_types::release::Release = signed.json().await.unwrap();
    let key = p.admin.public_key().await.unwrap();
    sluice_crypto::verify_release(
        &release.envelope,
        &hex::decode(&key.public_key_hex).unwrap(),
    )
    .expect("the downloaded release verifies");

    // A form without the session's CSRF token is refused and changes nothing.
    let before = carol.jobs().await.unwrap().len();
    let r = http
        .post(format!("{base}/console/jobs"))
        .header("cookie", &carol_cookie)
        .form(&[("manifest", manifest.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{base}/console/jobs"))
        .header("cookie", &carol_cookie)
        .form(&[("manifest", manifest.as_str()), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The session's own token, sent from another site's page, is refused.
    let composer = http
        .get(format!("{base}/console/jobs/new"))
        .header("cookie", &carol_cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = composer
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let r = http
        .post(format!("{base}/console/jobs"))
        .header("cookie", &carol_cookie)
        .header("origin", "http://attacker.example")
        .form(&[("manifest", manifest.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(carol.jobs().await.unwrap().len(), before);
    let r = http
        .post(format!("{base}/console/sign-in"))
        .header("origin", "http://attacker.example")
        .form(&[("token", carol_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());

    // Another user's job is 404, as through the API.
    let other = driver.browser().await;
    sign_in(&other, &base, &dave_token).await;
    other
        .goto(&format!("{base}/console/jobs/{job_id}"))
        .await
        .unwrap();
    text_when(&other, "h1", |t| t == "Not found").await;
    let r = http
        .get(format!("{base}/console/jobs/{job_id}/release.json"))
        .header("cookie", session_cookie(&other).await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Signing out ends the session: its cookie no longer works.
    researcher.goto(&format!("{base}/console/")).await.unwrap();
    click(&researcher, "header form button").await;
    text_when(&researcher, "h1", |t| t == "Sign in").await;
    let r = http
        .get(format!("{base}/console/jobs"))
        .header("cookie", &carol_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    for b in [researcher, reviewer, other] {
        b.close().await.unwrap();
    }
}

#[tokio::test]
async fn the_admins_audit_page_verifies_the_log_against_a_signed_checkpoint() {
    let p = Platform::start().await;
    let (_, admin_token) = user(&p, "admin2", Role::Admin).await;
    // A bad token at sign-in is refused and audited.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/console/sign-in", p.url))
        .form(&[("token", "slc_not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = http
        .post(format!("{}/console/sign-in", p.url))
        .form(&[("token", admin_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "no Secure flag on plain HTTP: {set}"
    );

    let driver = Driver::start().await;
    let admin = driver.browser().await;
    sign_in(&admin, &p.url, &admin_token).await;
    admin
        .goto(&format!("{}/console/audit", p.url))
        .await
        .unwrap();
    let verdict = text(&admin, "#verification").await;
    assert!(verdict.starts_with("Verified:"), "{verdict}");
    let log = text(&admin, "main table").await;
    assert!(log.contains("session.start"), "{log}");
    assert!(
        log.contains("request.denied") && log.contains("POST /console/sign-in"),
        "the refused sign-in is in the log: {log}"
    );
    screenshot(&admin, "audit").await;

    // Users: created from the form; the token is shown on that answer only.
    admin
        .goto(&format!("{}/console/users", p.url))
        .await
        .unwrap();
    type_into(&admin, "#name", "gina").await;
    click(&admin, "#role option[value='reviewer']").await;
    click(&admin, "main form button").await;
    let token = text(&admin, "#new-token").await;
    assert!(token.starts_with("slc_"), "{token}");
    let gina = p.admin.with_token(token.clone());
    assert_eq!(gina.me().await.unwrap().name, "gina");
    admin
        .goto(&format!("{}/console/users", p.url))
        .await
        .unwrap();
    let listing = text(&admin, "main").await;
    assert!(listing.contains("gina") && !listing.contains(&token));
    screenshot(&admin, "users").await;
    // Closing gina's access: published among the revocations.
    let gina_id = gina.me().await.unwrap().id;
    type_into(&admin, &format!("#close-{gina_id}"), "left the project").await;
    click(&admin, "form[action='/console/users/gina/close'] button").await;
    let revoked = text_when(&admin, "main tbody", |t| t.contains("left the project")).await;
    assert!(revoked.contains("gina"), "{revoked}");

    // Usage statistics and revocations render for the authority.
    admin
        .goto(&format!("{}/console/stats", p.url))
        .await
        .unwrap();
    text_when(&admin, "main", |t| {
        t.contains("By provider") && t.contains("By open category")
    })
    .await;
    screenshot(&admin, "stats").await;
    admin
        .goto(&format!("{}/console/revocations", p.url))
        .await
        .unwrap();
    text_when(&admin, "h1", |t| t == "Revocations").await;
    admin.close().await.unwrap();
}

#[tokio::test]
async fn an_application_goes_from_the_form_to_an_agreement_with_its_budget() {
    let p = Platform::start().await;
    let (provider, provider_token) = user(&p, "registry", Role::Provider).await;
    provider
        .create_dataset(&pums_descriptor("survey", "conditional"))
        .await
        .unwrap();
    let (erin, erin_token) = user(&p, "erin", Role::User).await;

    let driver = Driver::start().await;
    let researcher = driver.browser().await;
    sign_in(&researcher, &p.url, &erin_token).await;
    researcher
        .goto(&format!("{}/console/applications/new", p.url))
        .await
        .unwrap();
    // An empty form: every missing field is listed at once, nothing filed.
    click(&researcher, "main form button").await;
    text(&researcher, "#problems").await;
    let problems = researcher
        .find_all(Locator::Css("#problems li"))
        .await
        .unwrap();
    let mut listed = Vec::new();
    for li in problems {
        listed.push(li.text().await.unwrap());
    }
    for missing in ["title", "reason", "datasets", "period_start", "pledge"] {
        assert!(
            listed.iter().any(|l| l.contains(missing)),
            "{missing} not among {listed:?}"
        );
    }
    assert!(erin.applications(false).await.unwrap().is_empty());

    // What was typed stays; the rest is filled in and the form goes.
    let fill = |css: &'static str, value: &'static str| {
        let b = researcher.clone();
        async move {
            let e = b.find(Locator::Css(css)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(value).await.unwrap();
        }
    };
    fill("#title", "Income and education").await;
    fill("#reason", "City equity report").await;
    fill("#result_form", "DP aggregates in a report").await;
    fill("#scenario", "Yearly report").await;
    // Date inputs take the locale's order; set them as the form sends them.
    researcher
        .execute(
            "document.getElementById('period_start').value = '2026-01-01';\
             document.getElementById('period_end').value = '2027-12-31';",
            vec![],
        )
        .await
        .unwrap();
    click(&researcher, "#ds-survey").await;
    click(&researcher, "#pledge").await;
    click(&researcher, "main form button").await;
    let status = text_when(&researcher, "main p", |t| t.contains("submitted")).await;
    assert!(status.contains("working days left"), "{status}");
    let app_url = researcher.current_url().await.unwrap();

    // The provider decides from the application's page.
    let decider = driver.browser().await;
    sign_in(&decider, &p.url, &provider_token).await;
    decider
        .goto(&format!("{}/console/applications", p.url))
        .await
        .unwrap();
    assert!(
        text(&decider, "main table")
            .await
            .contains("working days left")
    );
    screenshot(&decider, "applications").await;
    decider.goto(app_url.as_str()).await.unwrap();
    for (id, value) in [
        ("#purpose", "equity report"),
        ("#scope", "survey"),
        ("#manner", "DP jobs only"),
        ("#prohibitions", "no re-identification"),
        ("#credit_commitment", "cite the registry"),
        ("#liability", "the applicant's"),
        ("#dispute_resolution", "city court"),
        ("#epsilon", "5"),
    ] {
        type_into(&decider, id, value).await;
    }
    screenshot(&decider, "application").await;
    click(&decider, "main form button").await;
    text_when(&decider, "main", |t| t.contains("approved")).await;

    // The researcher's agreements page shows the budget.
    researcher
        .goto(&format!("{}/console/agreements", p.url))
        .await
        .unwrap();
    let row = text(&researcher, "main tbody tr").await;
    assert!(
        row.contains("equity report") && row.contains("survey"),
        "{row}"
    );
    assert_eq!(erin.agreements().await.unwrap().len(), 1);
    screenshot(&researcher, "agreements").await;
    researcher.close().await.unwrap();
    decider.close().await.unwrap();
}

#[tokio::test]
async fn a_provider_publishes_from_the_console_and_a_suspension_cancels_a_held_job_live() {
    let p = Platform::start().await;
    let (provider, provider_token) = user(&p, "registry", Role::Provider).await;
    provider
        .create_dataset(&pums_descriptor("census", "unconditional"))
        .await
        .unwrap();
    let (frank, frank_token) = user(&p, "frank", Role::User).await;

    // The provider publishes a version from the dataset page, with
    // progress, and sees its quality report.
    let driver = Driver::start().await;
    let console = driver.browser().await;
    sign_in(&console, &p.url, &provider_token).await;
    console
        .goto(&format!("{}/console/datasets/census", p.url))
        .await
        .unwrap();
    let csv = crate::repo_file("examples/data/PUMS_pid.csv")
        .canonicalize()
        .unwrap();
    type_into(&console, "#file", csv.to_str().unwrap()).await;
    click(&console, "#upload button").await;
    let quality = text_when(&console, "#quality", |t| t.contains("rows")).await;
    assert!(quality.starts_with("1000 rows"), "{quality}");
    assert_eq!(provider.dataset("census").await.unwrap().versions.len(), 1);
    screenshot(&console, "dataset-provider").await;

    // The review policy from its form.
    click(&console, "#reviewers option[value='1']").await;
    click(&console, "form[action$='/review-policy'] button").await;
    // The page came back (its selector shows the default again): the
    // policy is stored.
    let mut reloaded = false;
    for _ in 0..300 {
        if let Ok(select) = console.find(Locator::Css("#reviewers")).await
            && select.prop("value").await.ok().flatten().as_deref() == Some("0")
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the review policy form did not come back");

    // A user reports a problem; the provider answers it on the feedback
    // page, which shows the deadline.
    let researcher = driver.browser().await;
    sign_in(&researcher, &p.url, &frank_token).await;
    researcher
        .goto(&format!("{}/console/datasets/census", p.url))
        .await
        .unwrap();
    type_into(
        &researcher,
        "#feedback-description",
        "income is top-coded without a note",
    )
    .await;
    click(&researcher, "form[action$='/feedback'] button").await;
    text_when(&researcher, "h1", |t| t == "PUMS census microdata sample").await;
    console
        .goto(&format!("{}/console/feedback", p.url))
        .await
        .unwrap();
    let item = text_when(&console, "main tbody tr", |t| t.contains("top-coded")).await;
    assert!(item.contains("working days left"), "{item}");
    // More time first (the authority decides), then the answer.
    type_into(&console, "input[name=working_days]", "20").await;
    type_into(
        &console,
        "form[action$='/extension'] input[name=reason]",
        "the source agency must confirm",
    )
    .await;
    click(&console, "form[action$='/extension'] button").await;
    text_when(&console, "main tbody tr", |t| {
        t.contains("extension requested")
    })
    .await;
    type_into(
        &console,
        "main tbody form input[name=answer]",
        "noted in the description",
    )
    .await;
    click(&console, "main tbody form button").await;
    text_when(&console, "main tbody tr", |t| {
        t.contains("noted in the description")
    })
    .await;
    screenshot(&console, "feedback").await;

    // A job held for review (the policy set above), followed live.
    let job = frank
        .submit_job(&crate::manifest(
            "census",
            "SELECT sex, COUNT(*) AS n FROM census GROUP BY sex",
            1.0,
        ))
        .await
        .unwrap();
    researcher
        .goto(&format!("{}/console/jobs/{}", p.url, job.id))
        .await
        .unwrap();
    text_when(&researcher, "#job-status .badge", |t| {
        t == "awaiting_review"
    })
    .await;

    // The provider suspends the dataset with a reason; the job page turns
    // to cancelled by itself.
    console
        .goto(&format!("{}/console/datasets/census", p.url))
        .await
        .unwrap();
    type_into(&console, "#suspend-reason", "a column is mislabelled").await;
    click(&console, "form[action$='/suspend'] button").await;
    let cancelled = researcher
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#job-status .badge.cancelled"))
        .await;
    assert!(
        cancelled.is_ok(),
        "the job page did not turn to cancelled: {}",
        text(&researcher, "#job-status").await
    );
    assert_eq!(frank.job(&job.id).await.unwrap().state, "cancelled");
    console.close().await.unwrap();
    researcher.close().await.unwrap();
}
