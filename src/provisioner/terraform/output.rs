//! What terraform prints, as Hangar reads it: `-json` lines into log lines with a stage and
//! level, and diagnostics kept to explain failures.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Which terraform command a log line or error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Init,
    Validate,
    Graph,
    Plan,
    Show,
    Apply,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Init,
        Stage::Validate,
        Stage::Graph,
        Stage::Plan,
        Stage::Show,
        Stage::Apply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Init => "init",
            Stage::Validate => "validate",
            Stage::Graph => "graph",
            Stage::Plan => "plan",
            Stage::Show => "show",
            Stage::Apply => "apply",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// terraform's `@level` values; anything unknown is shown rather than dropped.
    fn from_terraform(s: &str) -> Self {
        match s {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// One line of build output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub stage: Stage,
    pub level: LogLevel,
    pub text: String,
    /// Unix milliseconds when Hangar read the line.
    pub at_ms: i64,
}

/// A terraform diagnostic (`"type":"diagnostic"` line), kept to explain failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: LogLevel,
    pub summary: String,
    pub detail: String,
    /// `main.tf:2` or `main.tf:2-4`, when terraform knows where.
    pub location: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        f.write_str(&self.summary)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

pub(super) fn join_errors(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .filter(|d| d.severity == LogLevel::Error)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Turns one stdout line into a log line: a `-json` line by its `@level`/`@message` (and
/// diagnostic detail with file:line), anything else verbatim at info level.
pub fn parse_line(stage: Stage, raw: &str) -> (LogLine, Option<Diagnostic>) {
    let at_ms = now_ms();
    let parsed: Option<serde_json::Value> = raw
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str(raw).ok())
        .flatten();
    let Some(v) = parsed.filter(|v| v.get("@message").is_some()) else {
        return (
            LogLine {
                stage,
                level: LogLevel::Info,
                text: strip_ansi(raw).trim_end().to_string(),
                at_ms,
            },
            None,
        );
    };
    let level = LogLevel::from_terraform(v["@level"].as_str().unwrap_or("info"));
    let mut text = v["@message"].as_str().unwrap_or_default().to_string();
    let mut diag = None;
    if v["type"] == "diagnostic" {
        let d = parse_diagnostic(&v["diagnostic"]);
        if !d.detail.is_empty() {
            text.push_str(": ");
            text.push_str(&d.detail);
        }
        if let Some(loc) = &d.location {
            text.push_str(&format!(" ({loc})"));
        }
        diag = Some(d);
    }
    (
        LogLine {
            stage,
            level,
            text,
            at_ms,
        },
        diag,
    )
}

/// Removes terminal colour sequences (`ESC [ … letter`): terraform colours human output
/// on stderr even when it is not a terminal, and log lines are shown in a browser.
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

pub(super) fn parse_diagnostic(d: &serde_json::Value) -> Diagnostic {
    let range = &d["range"];
    let location = range["filename"].as_str().map(|file| {
        let start = range["start"]["line"].as_u64().unwrap_or(0);
        let end = range["end"]["line"].as_u64().unwrap_or(start);
        if end > start {
            format!("{file}:{start}-{end}")
        } else {
            format!("{file}:{start}")
        }
    });
    Diagnostic {
        severity: LogLevel::from_terraform(d["severity"].as_str().unwrap_or("error")),
        summary: d["summary"].as_str().unwrap_or_default().to_string(),
        detail: d["detail"].as_str().unwrap_or_default().to_string(),
        location,
    }
}

#[cfg(test)]
mod tests;
