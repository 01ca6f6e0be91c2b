//! The CLI as a new user meets it: the built binary against a real server, real terraform.

mod common;

use std::process::Output;

use common::*;

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn token_lifetimes_are_durations_and_bad_ones_are_refused() {
    let app = spawn_app().await;
    for (lifetime, why) in [
        ("99999999999d", "too long: at most 36500d (100 years)"),
        ("99999999999999999999999d", "too long"),
        ("0d", "is zero"),
        ("-1d", "write a number and a unit"),
        ("1.5d", "unknown unit"),
    ] {
        // `--lifetime=-1d`: a leading hyphen would otherwise read as a flag.
        let arg = format!("--lifetime={lifetime}");
        let out = app.cli(&["tokens", "create", "--name", "bad", &arg]).await;
        assert!(!out.status.success(), "{lifetime} was accepted");
        assert!(stderr(&out).contains(why), "{lifetime}: {}", stderr(&out));
    }
    let tokens = app.client.tokens().await.unwrap();
    assert!(
        tokens.iter().all(|t| t.name != "bad"),
        "a refused lifetime sent nothing"
    );

    ok(&app
        .cli(&["tokens", "create", "--name", "month", "--lifetime", "30d"])
        .await);
    ok(&app
        .cli(&["tokens", "create", "--name", "week", "--lifetime", "6d12h"])
        .await);
    ok(&app.cli(&["tokens", "create", "--name", "eternal"]).await);
    let list = ok(&app.cli(&["tokens", "list"]).await);
    let row = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in\n{list}"))
            .to_string()
    };
    assert!(list.starts_with("NAME"), "{list}");
    assert!(list.lines().next().unwrap().contains("LIFETIME"), "{list}");
    let month = row("month");
    assert!(month.contains(" 30d "), "{month}");
    assert!(
        month.ends_with("in 29d 23h") || month.ends_with("in 30d"),
        "{month}"
    );
    let week = row("week");
    assert!(week.contains(" 6d 12h "), "{week}");
    assert!(
        week.ends_with("in 6d 11h") || week.ends_with("in 6d 12h"),
        "{week}"
    );
    let eternal = row("eternal");
    assert!(
        eternal.contains("forever") && eternal.ends_with("never"),
        "{eternal}"
    );
    app.stop().await;
}
