//! The cron expressions prebuild schedules use: five fields (minute, hour, day of month,
//! month, day of week), each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a
//! comma list of those. The minute must be `*`: a schedule covers whole hours.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    hours: BTreeSet<u32>,
    days_of_month: BTreeSet<u32>,
    months: BTreeSet<u32>,
    days_of_week: BTreeSet<u32>,
    /// Whether each day field was restricted (not `*`): when both are, a day matches if
    /// either does, as in every cron.
    dom_restricted: bool,
    dow_restricted: bool,
}

/// Day and month names as cron takes them (`MON`, `jan`…).
fn named(field: &str, s: &str) -> Option<u32> {
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let s = s.to_ascii_lowercase();
    match field {
        "day of week" => DAYS.iter().position(|d| *d == s).map(|i| i as u32),
        "month" => MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1),
        _ => None,
    }
}

fn field(text: &str, name: &str, min: u32, max: u32) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step \"{s}\" must be a positive number"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let number = |s: &str| -> Result<u32, String> {
            let n: u32 = match named(name, s) {
                Some(n) => n,
                None => s
                    .parse()
                    .map_err(|_| format!("{name}: \"{s}\" is not a number"))?,
            };
            if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{name}: {n} is outside {min}-{max}"))
            }
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("{name}: range {a}-{b} runs backwards"));
            }
            (a, b)
        } else {
            let n = number(range)?;
            (n, if step > 1 { max } else { n })
        };
        out.extend((from..=to).step_by(step as usize));
    }
    Ok(out)
}

impl Cron {
    pub fn parse(spec: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = parts.as_slice() else {
            return Err(format!(
                "cron \"{spec}\" must have 5 fields (minute hour day-of-month month day-of-week)"
            ));
        };
        if *minute != "*" {
            return Err(format!(
                "cron \"{spec}\": the minute field must be *, a schedule covers whole hours"
            ));
        }
        let mut days_of_week = field(dow, "day of week", 0, 7)?;
        if days_of_week.remove(&7) {
            days_of_week.insert(0);
        }
        Ok(Cron {
            hours: field(hour, "hour", 0, 23)?,
            days_of_month: field(dom, "day of month", 1, 31)?,
            months: field(month, "month", 1, 12)?,
            days_of_week,
            dom_restricted: *dom != "*",
            dow_restricted: *dow != "*",
        })
    }

    fn day_matches(&self, dom: u32, dow: u32) -> bool {
        let by_dom = self.days_of_month.contains(&dom);
        let by_dow = self.days_of_week.contains(&dow);
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => by_dom || by_dow,
            _ => by_dom && by_dow,
        }
    }

    /// Whether the schedule covers this hour (local time of the schedule's zone);
    /// `dow` 0 is Sunday.
    pub fn matches(&self, month: u32, dom: u32, dow: u32, hour: u32) -> bool {
        self.months.contains(&month) && self.hours.contains(&hour) && self.day_matches(dom, dow)
    }

    /// Whether some hour is covered by both schedules.
    pub fn overlaps(&self, other: &Cron) -> bool {
        if self.hours.is_disjoint(&other.hours) || self.months.is_disjoint(&other.months) {
            return false;
        }
        (1..=31)
            .any(|dom| (0..7).any(|dow| self.day_matches(dom, dow) && other.day_matches(dom, dow)))
    }
}

/// The first pair of schedules that cover a common hour, as an error naming both.
pub fn check_no_overlap(specs: &[&str]) -> Result<(), String> {
    let parsed: Vec<Cron> = specs
        .iter()
        .map(|s| Cron::parse(s))
        .collect::<Result<_, _>>()?;
    for i in 0..parsed.len() {
        for j in i + 1..parsed.len() {
            if parsed[i].overlaps(&parsed[j]) {
                return Err(format!(
                    "schedules \"{}\" and \"{}\" overlap: each hour may be covered by one schedule only",
                    specs[i], specs[j]
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_as_cron_does() {
        let c = Cron::parse("* 8-18/2 * * 1-5").unwrap();
        assert!(c.matches(3, 10, 1, 8));
        assert!(!c.matches(3, 10, 1, 9));
        assert!(!c.matches(3, 10, 0, 8), "Sunday is outside 1-5");
        let sunday = Cron::parse("* 0 * * 7").unwrap();
        assert!(sunday.matches(1, 1, 0, 0), "7 is Sunday too");
        let named = Cron::parse("* 9-17 * JAN-mar MON-FRI").unwrap();
        assert!(
            named.matches(2, 3, 5, 9) && !named.matches(4, 3, 5, 9) && !named.matches(2, 3, 6, 9)
        );
        let either = Cron::parse("* 0 1 * 1").unwrap();
        assert!(either.matches(5, 1, 3, 0) && either.matches(5, 9, 1, 0));
        assert!(!either.matches(5, 9, 3, 0));
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, words) in [
            ("0 * * * *", "minute field must be *"),
            ("* * * *", "5 fields"),
            ("* 24 * * *", "outside 0-23"),
            ("* 5-2 * * *", "backwards"),
            ("* */0 * * *", "positive"),
            ("* x * * *", "not a number"),
        ] {
            let err = Cron::parse(spec).unwrap_err();
            assert!(err.contains(words), "{spec}: {err}");
        }
    }

    #[test]
    fn overlapping_schedules_are_found() {
        assert!(check_no_overlap(&["* 8-12 * * 1-5", "* 13-18 * * 1-5", "* * * * 0,6"]).is_ok());
        let err = check_no_overlap(&["* 8-12 * * 1-5", "* 12-18 * * 5"]).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
    }
}
