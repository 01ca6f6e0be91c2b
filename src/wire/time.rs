//! [`Timestamp`]: milliseconds since the epoch inside, RFC 3339 on the wire.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, stored as Unix milliseconds (as the database keeps it) and written as
/// an RFC 3339 string in UTC (`2026-11-25T09:30:00.123Z`), as Coder's API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn ms(self) -> i64 {
        self.0
    }

    pub fn rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            // Out of range only for years past 9999, which no clock of ours produces.
            .unwrap_or_else(|| self.0.to_string())
    }

    /// "3m ago", "2h ago": how long before now, for people.
    pub fn ago(self) -> String {
        let secs = ((crate::model::now_ms() - self.0) / 1000).max(0);
        match secs {
            0..=59 => format!("{secs}s ago"),
            60..=3599 => format!("{}m ago", secs / 60),
            3600..=86399 => format!("{}h ago", secs / 3600),
            _ => format!("{}d ago", secs / 86400),
        }
    }

    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let t = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
        Ok(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 time in UTC"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl From<i64> for Timestamp {
    fn from(ms: i64) -> Self {
        Timestamp(ms)
    }
}

/// The time between two timestamps, in milliseconds.
impl std::ops::Sub for Timestamp {
    type Output = i64;
    fn sub(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        for ms in [
            0,
            1,
            999,
            1_764_063_000_123,
            -86_400_000,
            253_402_300_799_999,
        ] {
            let t = Timestamp(ms);
            let json = serde_json::to_string(&t).unwrap();
            assert!(json.ends_with("Z\""), "{json}");
            assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }
        assert_eq!(
            Timestamp(1_764_063_000_123).rfc3339(),
            "2025-11-25T09:30:00.123Z"
        );
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
