//! Times leave Tidings as RFC 3339 in UTC with a `Z` (`2026-12-01T19:49:08.879576Z`),
//! the form they are accepted in. The database keeps UTC without an offset
//! (`NaiveDateTime`); these serializers, named with `#[serde(serialize_with)]`
//! on every time field a response carries, put the offset back.

use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serializer;

/// A stored UTC time as RFC 3339 with `Z`, to the microsecond.
pub fn rfc3339(t: &NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn utc<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(t))
}

pub fn utc_opt<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_with_z() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .and_then(|d| d.and_hms_micro_opt(19, 49, 8, 879_576))
            .unwrap();
        assert_eq!(super::rfc3339(&t), "2026-12-01T19:49:08.879576Z");
    }
}
