//! A digest's bounce and complaint rates, and the Gmail/Yahoo bulk-sender
//! thresholds they are held against: shared by the API, the console and
//! /metrics.

/// A digest's bounces and complaints, and how they compare with the
/// Gmail/Yahoo bulk-sender thresholds on complaints (0.1% warns, 0.3% is
/// the ceiling past which their inboxes close).
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq)]
pub struct DigestBounces {
    pub hard: i64,
    pub soft: i64,
    pub complaints: i64,
    /// Bounces (hard and soft) per email sent.
    pub bounce_rate: f64,
    /// Complaints per email sent.
    pub complaint_rate: f64,
    /// `warning` past 0.1%, `alert` past 0.3%.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complaint_level: Option<&'static str>,
}

/// The complaint rate past which a digest is flagged, and past which it is
/// an alert.
pub const COMPLAINT_WARNING: f64 = 0.001;
pub const COMPLAINT_ALERT: f64 = 0.003;

impl DigestBounces {
    /// The figures of a digest sent to `sent` readers (rates 0 when it was
    /// sent to nobody yet).
    pub fn of(hard: i64, soft: i64, complaints: i64, sent: i64) -> Self {
        let mut out = Self {
            hard,
            soft,
            complaints,
            ..Self::default()
        };
        if sent > 0 {
            out.bounce_rate = (hard + soft) as f64 / sent as f64;
            out.complaint_rate = complaints as f64 / sent as f64;
        }
        out.complaint_level = if out.complaint_rate > COMPLAINT_ALERT {
            Some("alert")
        } else if out.complaint_rate > COMPLAINT_WARNING {
            Some("warning")
        } else {
            None
        };
        out
    }
}
