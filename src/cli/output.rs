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

/// "3m ago", "2h ago": how long since a time (a `Timestamp` or unix milliseconds).
pub fn ago(at: impl Into<crate::wire::Timestamp>) -> String {
    at.into().ago()
}

/// The longest duration `parse_duration` accepts: 100 years, Coder's default maximum
/// token lifetime. Anything longer is a typo, and would overflow the server's milliseconds.
pub const MAX_DURATION_SECS: i64 = 100 * 365 * 86400;

/// "90s", "30m", "12h", "7d", "1d12h" → seconds; a bare number is hours.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let how = "write a number and a unit, e.g. 30m, 12h, 30d or 1d12h";
    if s.is_empty() {
        anyhow::bail!("an empty duration: {how}");
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            anyhow::bail!("duration {s}: {how}");
        }
        let (num, after) = rest.split_at(digits);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "" if total == 0 && after.is_empty() => 3600,
            "d" => 86400,
            "" => anyhow::bail!("duration {s}: every number needs a unit; use s, m, h or d"),
            other => anyhow::bail!("duration {s}: unknown unit \"{other}\"; use s, m, h or d"),
        };
        let part = num
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|&secs| secs <= MAX_DURATION_SECS);
        total = match part.and_then(|p| total.checked_add(p)) {
            Some(t) if t <= MAX_DURATION_SECS => t,
            _ => anyhow::bail!(
                "duration {s} is too long: at most {} (100 years)",
                format_duration(MAX_DURATION_SECS)
            ),
        };
        rest = after;
    }
    if total == 0 {
        anyhow::bail!("duration {s} is zero: {how}");
    }
    Ok(total)
}

/// Seconds as their two largest units: "29d 23h", "6d", "5h 30m", "45m", "30s".
pub fn format_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let units = [(86400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let Some(first) = units.iter().position(|(size, _)| secs >= *size) else {
        return "0s".into();
    };
    let (size, unit) = units[first];
    let mut out = format!("{}{unit}", secs / size);
    if let Some(&(next, next_unit)) = units.get(first + 1) {
        let n = secs % size / next;
        if n > 0 {
            out.push_str(&format!(" {n}{next_unit}"));
        }
    }
    out
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
        anyhow::bail!("no answer (end of input) to \"{}\"", question.trim());
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
        use super::parse_duration;
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("2d").unwrap(), 172800);
        assert_eq!(
            parse_duration("12").unwrap(),
            12 * 3600,
            "a bare number is hours"
        );
        assert_eq!(parse_duration("1d12h").unwrap(), 36 * 3600);
        assert_eq!(parse_duration("36500d").unwrap(), super::MAX_DURATION_SECS);
        for bad in ["soon", "", "-5d", "1.5d", "0d", "1d2", "d"] {
            assert!(parse_duration(bad).is_err(), "{bad} was accepted");
        }
        assert!(parse_duration("3w")
            .unwrap_err()
            .to_string()
            .contains("unknown unit \"w\""));
        for huge in [
            "36501d",
            "99999999999d",
            "99999999999999999999d",
            "36500d1s",
        ] {
            let err = parse_duration(huge).unwrap_err().to_string();
            assert!(err.contains("too long: at most 36500d"), "{huge}: {err}");
        }
    }

    #[test]
    fn durations_print_as_their_two_largest_units() {
        use super::format_duration;
        assert_eq!(format_duration(30 * 86400 - 1), "29d 23h");
        assert_eq!(format_duration(6 * 86400), "6d");
        assert_eq!(format_duration(5 * 3600 + 30 * 60 + 7), "5h 30m");
        assert_eq!(format_duration(45 * 60), "45m");
        assert_eq!(format_duration(30), "30s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(-5), "0s");
    }
}
