//! A reader's own settings as the preferences form gives them, parsed
//! once: how long to pause, and which sections to get.

/// The pauses a reader may choose, in weeks.
pub const PAUSE_WEEKS: [u32; 3] = [1, 2, 4];
/// Most sections one reader may pick.
pub const MAX_SECTIONS: usize = 30;

/// A pause of 1, 2 or 4 weeks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pause(u32);

impl Pause {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().parse::<u32>() {
            Ok(w) if PAUSE_WEEKS.contains(&w) => Ok(Self(w)),
            _ => Err("must be 1, 2 or 4 weeks".into()),
        }
    }

    pub fn weeks(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::weeks(i64::from(self.0))
    }
}

/// The sections a reader picked: names as the articles give them, trimmed,
/// without repeats (case-insensitively), sorted. Empty means every
/// section. Its [`SectionChoice::key`] is what `section_choices` stores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionChoice(Vec<String>);

impl SectionChoice {
    /// Each name at most 100 characters, no control characters; at most
    /// [`MAX_SECTIONS`] of them.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out: Vec<String> = Vec::new();
        for name in names {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err("has a name that is not a section".into());
            }
            if !out.iter().any(|n| n.to_lowercase() == name.to_lowercase()) {
                out.push(name.to_string());
            }
        }
        if out.len() > MAX_SECTIONS {
            return Err(format!("may name at most {MAX_SECTIONS} sections"));
        }
        out.sort_by_key(|n| n.to_lowercase());
        Ok(Self(out))
    }

    /// The stored form: a JSON array of the names.
    pub fn from_key(key: &str) -> Self {
        Self(serde_json::from_str(key).unwrap_or_default())
    }

    /// Lower-cased, so "Sport" and "sport" are one choice (sections match
    /// case-insensitively).
    pub fn key(&self) -> String {
        let names: Vec<String> = self.0.iter().map(|n| n.to_lowercase()).collect();
        serde_json::to_string(&names).unwrap_or_default()
    }

    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether an article in `sections` is one this choice wants.
    pub fn wants(&self, sections: &[String]) -> bool {
        self.is_all()
            || sections.iter().any(|s| {
                self.0
                    .iter()
                    .any(|n| n.to_lowercase() == s.trim().to_lowercase())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses() {
        assert_eq!(Pause::parse("2").unwrap().weeks(), 2);
        assert!(Pause::parse("3").is_err());
        assert!(Pause::parse("x").is_err());
    }

    #[test]
    fn choices() {
        let c = SectionChoice::parse(["Sport", " world ", "sport", ""]).unwrap();
        assert_eq!(c.names(), ["Sport", "world"]);
        assert_eq!(
            SectionChoice::from_key(&c.key()).names(),
            ["sport", "world"]
        );
        assert_eq!(
            c.key(),
            SectionChoice::parse(["WORLD", "sport"]).unwrap().key()
        );
        assert!(c.wants(&["World".into()]));
        assert!(!c.wants(&["Culture".into()]));
        assert!(!c.wants(&[]));
        assert!(SectionChoice::default().wants(&[]));
        assert!(SectionChoice::parse(["a\nb"]).is_err());
    }
}
