//! Cron schedules of `hangar_script.cron`: six fields with seconds, as Coder's agent
//! (`sec min hour day-of-month month day-of-week`; five fields mean second 0). Times are
//! UTC: the agent runs anywhere, and UTC means the same thing on every machine.

/// One field: the allowed values as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    bits: u64,
    /// Written as `*` (or `?`): matters for the day-of-month/day-of-week rule.
    any: bool,
}

impl Field {
    fn has(&self, v: u32) -> bool {
        self.bits & (1u64 << v) != 0
    }

    fn parse(text: &str, min: u32, max: u32, what: &str) -> Result<Field, String> {
        let mut bits = 0u64;
        let any = text == "*" || text == "?";
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .map_err(|_| format!("bad step {s:?} in the {what} field"))?;
                    if step == 0 {
                        return Err(format!("step 0 in the {what} field"));
                    }
                    (r, step)
                }
                None => (part, 1),
            };
            let num = |s: &str| -> Result<u32, String> {
                let v: u32 = s
                    .parse()
                    .map_err(|_| format!("bad value {s:?} in the {what} field"))?;
                if v < min || v > max {
                    return Err(format!(
                        "{v} is out of range {min}-{max} in the {what} field"
                    ));
                }
                Ok(v)
            };
            let (lo, hi) = if range == "*" || range == "?" {
                (min, max)
            } else if let Some((a, b)) = range.split_once('-') {
                (num(a)?, num(b)?)
            } else if part.contains('/') {
                // `a/n`: from a to the end.
                (num(range)?, max)
            } else {
                let v = num(range)?;
                (v, v)
            };
            if lo > hi {
                return Err(format!("range {lo}-{hi} is backwards in the {what} field"));
            }
            let mut v = lo;
            while v <= hi {
                bits |= 1u64 << v;
                v += step;
            }
        }
        // Day of week 7 is Sunday, like 0 (so `1-7` works).
        if what == "day-of-week" && bits & (1 << 7) != 0 {
            bits |= 1;
        }
        Ok(Field { bits, any })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    sec: Field,
    min: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01 (Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let fields = match fields.len() {
            6 => fields,
            5 => std::iter::once("0").chain(fields).collect(),
            n => {
                return Err(format!(
                    "cron {text:?} has {n} fields; expected 6 (sec min hour day month weekday)"
                ))
            }
        };
        let err = |e: String| format!("cron {text:?}: {e}");
        Ok(Schedule {
            sec: Field::parse(fields[0], 0, 59, "second").map_err(err)?,
            min: Field::parse(fields[1], 0, 59, "minute").map_err(err)?,
            hour: Field::parse(fields[2], 0, 23, "hour").map_err(err)?,
            dom: Field::parse(fields[3], 1, 31, "day-of-month").map_err(err)?,
            month: Field::parse(fields[4], 1, 12, "month").map_err(err)?,
            dow: Field::parse(fields[5], 0, 7, "day-of-week").map_err(err)?,
        })
    }

    fn day_matches(&self, days: i64) -> bool {
        let (_, month, dom) = civil_from_days(days);
        // 1970-01-01 was a Thursday (4).
        let dow = (days + 4).rem_euclid(7) as u32;
        if !self.month.has(month) {
            return false;
        }
        // Classic cron: when both day fields are restricted, either may match.
        match (self.dom.any, self.dow.any) {
            (true, true) => true,
            (false, true) => self.dom.has(dom),
            (true, false) => self.dow.has(dow),
            (false, false) => self.dom.has(dom) || self.dow.has(dow),
        }
    }

    /// The first matching second strictly after `after` (unix seconds, UTC), looking at
    /// most about five years ahead (a schedule like Feb 30 never matches).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = after + 1;
        let limit = after + 5 * 366 * 86_400;
        while t <= limit {
            let days = t.div_euclid(86_400);
            if !self.day_matches(days) {
                t = (days + 1) * 86_400;
                continue;
            }
            let in_day = t.rem_euclid(86_400);
            let (hour, min, sec) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
            if !self.hour.has(hour as u32) {
                t = days * 86_400 + (hour + 1) * 3600;
                continue;
            }
            if !self.min.has(min as u32) {
                t = days * 86_400 + hour * 3600 + (min + 1) * 60;
                continue;
            }
            match (sec as u32..60).find(|s| self.sec.has(*s)) {
                Some(s) => return Some(t - sec + i64::from(s)),
                None => t = t - sec + 60,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-01-01T00:00:00Z, a Monday.
    const JAN1: i64 = 1_704_067_200;

    #[test]
    fn calendar_math_is_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(JAN1 / 86_400), (2024, 1, 1));
        assert_eq!(civil_from_days(JAN1 / 86_400 + 59), (2024, 2, 29));
    }

    #[test]
    fn every_second_and_every_five_minutes() {
        let s = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(s.next_after(JAN1), Some(JAN1 + 1));
        let s = Schedule::parse("0 */5 * * * *").unwrap();
        assert_eq!(s.next_after(JAN1), Some(JAN1 + 300));
        assert_eq!(s.next_after(JAN1 + 301), Some(JAN1 + 600));
        // Five fields: second 0.
        let s = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(s.next_after(JAN1), Some(JAN1 + 2 * 3600 + 30 * 60));
    }

    #[test]
    fn weekdays_months_and_lists() {
        // 09:00 on weekdays: Monday Jan 1 2024 qualifies.
        let s = Schedule::parse("0 0 9 * * 1-5").unwrap();
        assert_eq!(s.next_after(JAN1), Some(JAN1 + 9 * 3600));
        // Sundays (0 or 7): Jan 7 2024.
        let s = Schedule::parse("0 0 0 * * 7").unwrap();
        assert_eq!(s.next_after(JAN1), Some(JAN1 + 6 * 86_400));
        let s = Schedule::parse("0 0 0 * * 6-7").unwrap();
        assert_eq!(s.next_after(JAN1), Some(JAN1 + 5 * 86_400));
        assert_eq!(s.next_after(JAN1 + 5 * 86_400), Some(JAN1 + 6 * 86_400));
        // Leap day.
        let s = Schedule::parse("0 0 12 29 2 *").unwrap();
        assert_eq!(s.next_after(JAN1), Some(JAN1 + 59 * 86_400 + 12 * 3600));
        let s = Schedule::parse("15,45 * * * * *").unwrap();
        assert_eq!(s.next_after(JAN1 + 20), Some(JAN1 + 45));
        assert_eq!(
            Schedule::parse("0 0 0 30 2 *").unwrap().next_after(JAN1),
            None
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        assert!(Schedule::parse("* * *").unwrap_err().contains("3 fields"));
        assert!(Schedule::parse("61 * * * * *")
            .unwrap_err()
            .contains("out of range"));
        assert!(Schedule::parse("*/0 * * * * *")
            .unwrap_err()
            .contains("step 0"));
        assert!(Schedule::parse("5-1 * * * * *")
            .unwrap_err()
            .contains("backwards"));
    }
}
