//! The dashboard's growth chart as inline SVG, drawn on the server (no
//! script, no external image). Only numbers and dates go into it.

use std::fmt::Write;

use chrono::NaiveDate;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 34.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

/// A bar per day, the largest value on the y axis, dates under the first,
/// middle and last bars. Each bar has a tooltip with its date and count.
pub fn svg(days: &[(NaiveDate, i64)]) -> String {
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.75).max(1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"New confirmed readers per day, last {} days\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        days.len()
    );
    let base = TOP + plot_h;
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"currentColor\" stroke-opacity=\".4\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{}\" y2=\"{TOP}\" stroke=\"currentColor\" stroke-opacity=\".15\" stroke-dasharray=\"3 3\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"currentColor\">{max}</text>\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\" font-size=\"11\" fill=\"currentColor\">0</text>",
        WIDTH - 4.0,
        WIDTH - 4.0,
        LEFT - 6.0,
        TOP + 4.0,
        LEFT - 6.0,
    );
    for (i, (day, n)) in days.iter().enumerate() {
        let h = plot_h * (*n as f64) / (max as f64);
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" rx=\"1.5\">\
             <title>{day}: {n}</title></rect>",
            base - h
        );
    }
    let label_at = [0, days.len() / 2, days.len().saturating_sub(1)];
    for (k, i) in label_at.iter().enumerate() {
        let Some((day, _)) = days.get(*i) else {
            continue;
        };
        let x = LEFT + slot * *i as f64 + slot / 2.0;
        let anchor = ["start", "middle", "end"][k];
        let x = match k {
            0 => x - slot / 2.0,
            2 => x + slot / 2.0,
            _ => x,
        };
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"currentColor\">{}</text>",
            HEIGHT - 6.0,
            day.format("%b %-d")
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_a_bar_per_day() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let days = crate::stats::per_day(&[], today, 30);
        let s = svg(&days);
        assert!(s.starts_with("<svg"));
        assert!(s.ends_with("</svg>"));
        assert_eq!(s.matches("<rect").count(), 30);
        assert!(s.contains("Nov 1"));
        assert!(s.contains("Nov 30"));
    }
}
