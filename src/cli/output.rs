//! `-o table|json` for every list, and the small helpers to print them.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Prints rows under upper-case headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(headers, rows));
}

pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(|s| s.as_str()).collect()));
    }
    out
}

pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// "3m ago", "2h ago": how long since a unix-millisecond time.
pub fn ago(ms: i64) -> String {
    let secs = ((crate::model::now_ms() - ms) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// "90s", "30m", "12h", "7d" → seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| {
        anyhow::anyhow!("duration {s:?}: write a number and a unit, e.g. 30m, 12h, 30d")
    })?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" | "" => 3600,
        "d" => 86400,
        other => anyhow::bail!("duration {s:?}: unknown unit {other:?}; use s, m, h or d"),
    };
    Ok(n * scale)
}

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks a question on the terminal; `secret` turns echo off for passwords.
pub fn prompt(question: &str, secret: bool) -> anyhow::Result<String> {
    use std::io::Write;
    eprint!("{question}");
    std::io::stderr().flush()?;
    let echo_off = secret && stdin_is_terminal();
    let saved = if echo_off { set_echo(false) } else { None };
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if let Some(saved) = saved {
        restore(saved);
        eprintln!();
    }
    if read? == 0 {
        anyhow::bail!("no answer (end of input) to {:?}", question.trim());
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn set_echo(on: bool) -> Option<libc::termios> {
    // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed, then filled, termios struct.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return None;
        }
        let saved = t;
        if on {
            t.c_lflag |= libc::ECHO;
        } else {
            t.c_lflag &= !libc::ECHO;
        }
        libc::tcsetattr(0, libc::TCSANOW, &t);
        Some(saved)
    }
}

fn restore(saved: libc::termios) {
    // SAFETY: restores the attributes read by `set_echo`.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &saved);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_pads_columns() {
        let out = super::render_table(
            &["NAME", "ROLE"],
            &[
                vec!["alice".into(), "owner".into()],
                vec!["bo".into(), "member".into()],
            ],
        );
        assert_eq!(out, "NAME   ROLE\nalice  owner\nbo     member\n");
    }

    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("30m").unwrap(), 1800);
        assert_eq!(super::parse_duration("2d").unwrap(), 172800);
        assert!(super::parse_duration("soon").is_err());
        assert!(super::parse_duration("3w")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
    }
}
