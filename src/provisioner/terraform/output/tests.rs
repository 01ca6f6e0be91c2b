//! Tests of the `-json` line parser: examples, then properties over generated input.

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::RngAlgorithm;
use serde_json::Value;

use super::*;

#[test]
fn strips_colours() {
    let coloured =
        "\u{1b}[31m\u{1b}[31m╷\u{1b}[0m\u{1b}[0m \u{1b}[1m\u{1b}[31mError: \u{1b}[0mboom";
    assert_eq!(strip_ansi(coloured), "╷ Error: boom");
    assert!(matches!(strip_ansi("plain"), Cow::Borrowed(_)));
}

#[test]
fn parses_json_lines_and_diagnostics() {
    let raw = r#"{"@level":"error","@message":"Error: Reference to undeclared input variable","diagnostic":{"severity":"error","summary":"Reference to undeclared input variable","detail":"An input variable with the name \"hunter2\" has not been declared.","range":{"filename":"main.tf","start":{"line":2,"column":11},"end":{"line":2,"column":19}}},"type":"diagnostic"}"#;
    let (line, diag) = parse_line(Stage::Plan, raw);
    assert_eq!(line.level, LogLevel::Error);
    assert!(line.text.contains("(main.tf:2)"), "{}", line.text);
    let diag = diag.unwrap();
    assert_eq!(diag.location.as_deref(), Some("main.tf:2"));
    assert!(diag
        .to_string()
        .starts_with("main.tf:2: Reference to undeclared"));

    let (line, diag) = parse_line(Stage::Init, "plain text");
    assert_eq!(
        (line.level, line.text.as_str()),
        (LogLevel::Info, "plain text")
    );
    assert!(diag.is_none());
}

// Properties of `parse_line` over generated input. Whatever terraform (or a provider,
// or a local-exec) prints, the parser must not panic, must not lose the line's text,
// and must map levels as documented.

const ESC: char = '\u{1b}';

/// terraform's level names as `LogLevel::from_terraform` documents them; `missing` is
/// what an absent or non-string value means.
fn documented_level(v: &Value, missing: LogLevel) -> LogLevel {
    match v.as_str() {
        None => missing,
        Some("trace") => LogLevel::Trace,
        Some("debug") => LogLevel::Debug,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some(_) => LogLevel::Info,
    }
}

/// `main.tf:2`, or `main.tf:2-4` when the range spans lines (see `Diagnostic`).
fn documented_location(range: &Value) -> Option<String> {
    let file = range["filename"].as_str()?;
    let start = range["start"]["line"].as_u64().unwrap_or(0);
    Some(match range["end"]["line"].as_u64() {
        Some(end) if end > start => format!("{file}:{start}-{end}"),
        _ => format!("{file}:{start}"),
    })
}

/// What every line must satisfy, whatever it was.
fn check_line(stage: Stage, raw: &str) -> Result<(), TestCaseError> {
    let (line, diag) = parse_line(stage, raw);
    prop_assert_eq!(line.stage, stage);
    // As stored and streamed: a stage and a level by name, never empty.
    let shown = serde_json::to_value(&line).unwrap();
    prop_assert_eq!(shown["stage"].as_str(), Some(stage.as_str()));
    prop_assert!(!stage.as_str().is_empty());
    prop_assert_eq!(shown["level"].as_str(), Some(line.level.as_str()));
    prop_assert!(line.at_ms > 0);

    // A terraform `-json` line is an object with an `@message`; anything else is text.
    let json = serde_json::from_str::<Value>(raw).ok();
    let Some(v) = json.filter(|v| v.get("@message").is_some()) else {
        prop_assert_eq!(line.level, LogLevel::Info);
        prop_assert!(diag.is_none());
        prop_assert!(!line.text.contains(ESC), "{:?}", line.text);
        prop_assert_eq!(line.text.trim_end(), line.text.as_str());
        if raw.contains(ESC) {
            // Colour codes removed, nothing else: the text is a subsequence of raw.
            let mut rest = raw.chars();
            prop_assert!(line.text.chars().all(|c| rest.any(|r| r == c)));
        } else {
            prop_assert_eq!(line.text.as_str(), raw.trim_end());
        }
        return Ok(());
    };
    prop_assert_eq!(line.level, documented_level(&v["@level"], LogLevel::Info));
    let message = v["@message"].as_str().unwrap_or_default();
    prop_assert!(line.text.starts_with(message));
    let (d, Some(diag)) = (&v["diagnostic"], diag) else {
        prop_assert!(
            v["type"] != "diagnostic",
            "a diagnostic line gave no diagnostic"
        );
        prop_assert_eq!(line.text.as_str(), message);
        return Ok(());
    };
    prop_assert_eq!(&v["type"], "diagnostic");
    let severity = documented_level(&d["severity"], LogLevel::Error);
    prop_assert_eq!(diag.severity, severity);
    let field = |name: &str| d[name].as_str().unwrap_or_default();
    prop_assert_eq!(&diag.summary, field("summary"));
    prop_assert_eq!(&diag.detail, field("detail"));
    let location = documented_location(&d["range"]);
    prop_assert_eq!(&diag.location, &location);
    let mut expected = message.to_string();
    if !diag.detail.is_empty() {
        expected = format!("{expected}: {}", diag.detail);
    }
    if let Some(loc) = &location {
        expected = format!("{expected} ({loc})");
    }
    prop_assert_eq!(&line.text, &expected);
    let shown = diag.to_string();
    prop_assert!(shown.contains(&diag.summary) && shown.contains(&diag.detail));
    Ok(())
}

/// One of the space-separated `words`.
fn one_of(words: &'static str) -> BoxedStrategy<Value> {
    select(words.split(' ').collect::<Vec<_>>())
        .prop_map(Value::from)
        .boxed()
}

/// Anything, plus what stresses this parser: colour codes, braces, quotes, colons.
fn text() -> BoxedStrategy<String> {
    let pieces =
        "\u{1b}[31m \u{1b}[1;2m \u{1b}[0m \u{1b}[ \u{1b} { } \" \\ : @message \t é ╷ Error";
    prop_oneof![
        2 => prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        2 => "[ -~]{0,40}",
        2 => prop::collection::vec(select(pieces.split(' ').collect::<Vec<_>>()), 0..12)
            .prop_map(|p| p.concat()),
    ]
    .boxed()
}

fn string() -> BoxedStrategy<Value> {
    text().prop_map(Value::from).boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        string(),
    ]
    .boxed()
}

/// Any JSON; object keys are often terraform's, so objects sometimes look like its lines.
fn json() -> BoxedStrategy<Value> {
    let known = "@level @message type diagnostic hook severity summary detail range filename start end line";
    let key = prop_oneof![
        one_of(known).prop_map(|k| k.as_str().unwrap().to_string()),
        text()
    ];
    leaf()
        .prop_recursive(3, 32, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// An object with each of `fields` mostly well-formed, sometimes absent, sometimes of
/// the wrong type.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .map(|(name, good)| {
            let value =
                prop_oneof![6 => good.prop_map(Some), 1 => Just(None), 1 => leaf().prop_map(Some)];
            (name, value)
        })
        .unzip();
    values
        .prop_map(move |values| {
            let present = names.iter().zip(values).filter_map(|(k, v)| Some((k, v?)));
            Value::Object(present.map(|(k, v)| (k.to_string(), v)).collect())
        })
        .boxed()
}

fn level_name() -> BoxedStrategy<Value> {
    prop_oneof![3 => one_of("trace debug info warn error warning ERROR "), 1 => string()].boxed()
}

fn line_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (0u64..5000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
    ]
    .boxed()
}

fn diagnostic() -> BoxedStrategy<Value> {
    let position = || {
        let fields = ["line", "column"].map(|f| (f, line_number()));
        object(fields.into())
    };
    let range = object(vec![
        ("filename", string()),
        ("start", position()),
        ("end", position()),
    ]);
    object(vec![
        ("severity", level_name()),
        ("summary", string()),
        ("detail", string()),
        ("range", range),
        ("snippet", leaf()),
    ])
}

/// The `hook` of `apply_start`, `apply_complete`, `provision_progress`, … lines; the
/// parser ignores it, so its values are cheap to make.
fn hook() -> BoxedStrategy<Value> {
    let address = || one_of("terraform_data.vm[0] module.m.terraform_data.a[\"k\"] x");
    let names = "addr module resource implied_provider resource_type".split(' ');
    let mut resource: Vec<_> = names.map(|f| (f, address())).collect();
    resource.push(("resource_key", leaf()));
    object(vec![
        ("resource", object(resource)),
        ("action", one_of("create read update replace delete noop")),
        ("id_key", address()),
        ("id_value", address()),
        ("elapsed_seconds", line_number()),
    ])
}

/// A terraform `-json` message as it could appear, with random parts.
fn terraform_message() -> BoxedStrategy<Value> {
    let kinds = "diagnostic version log apply_start apply_progress apply_complete \
                 apply_errored planned_change change_summary outputs provision_progress";
    let kind = prop_oneof![4 => one_of(kinds), 1 => string()].boxed();
    object(vec![
        ("@level", level_name()),
        ("@message", string()),
        ("@module", Just(Value::from("terraform.ui")).boxed()),
        ("type", kind),
        ("diagnostic", diagnostic()),
        ("hook", hook()),
    ])
}

fn stage() -> impl Strategy<Value = Stage> {
    select(Stage::ALL.to_vec())
}

proptest! {
    // 3 × 20,000 cases, about 7 s of CPU unoptimized. XorShift, not the default ChaCha:
    // unoptimized, ChaCha tripled that, and these cases need variety, not cryptographic
    // randomness.
    #![proptest_config(ProptestConfig {
        cases: 20_000,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_text_is_kept(stage in stage(), raw in text()) {
        check_line(stage, &raw)?;
    }

    #[test]
    fn any_json_is_read_or_kept(stage in stage(), v in json(), pad in "[ \t]{0,2}") {
        check_line(stage, &format!("{pad}{v}{pad}"))?;
    }

    #[test]
    fn terraform_messages_are_read(stage in stage(), v in terraform_message(), pad in "[ \t]{0,2}") {
        let raw = format!("{pad}{v}{pad}");
        check_line(stage, &raw)?;
        // Checked against what was generated too, not only against the line re-read.
        let (line, _) = parse_line(stage, &raw);
        if v.get("@message").is_some() {
            prop_assert_eq!(line.level, documented_level(&v["@level"], LogLevel::Info));
            prop_assert!(line.text.starts_with(v["@message"].as_str().unwrap_or_default()));
        } else {
            prop_assert_eq!((line.level, line.text.as_str()), (LogLevel::Info, raw.trim_end()));
        }
    }
}
