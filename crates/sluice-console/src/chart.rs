//! A bar chart with 95 % interval whiskers, drawn as inline SVG by the
//! release page's template (no chart library, no script; presentation
//! attributes only, so the strict Content-Security-Policy holds).

use crate::format::number;

/// Geometry of one bar and its whisker, in SVG user units.
pub struct Bar {
    pub label: String,
    pub value: String,
    pub interval: String,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// The whisker's centre and ends.
    pub mid: f64,
    pub low: f64,
    pub high: f64,
    pub label_y: f64,
}

pub struct Chart {
    pub title: String,
    pub width: f64,
    pub height: f64,
    /// The y of the zero line.
    pub zero: f64,
    pub bars: Vec<Bar>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 280.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
/// Beyond this many bars a chart is no longer read; the table stays.
pub const MAX_BARS: usize = 40;

impl Chart {
    /// One bar per `(label, value, [low, high])`; None when there is
    /// nothing to draw or too much to read.
    pub fn bars(title: &str, points: &[(String, f64, [f64; 2])]) -> Option<Chart> {
        if points.is_empty() || points.len() > MAX_BARS {
            return None;
        }
        let finite = |x: f64| x.is_finite();
        if !points
            .iter()
            .all(|(_, v, [l, h])| finite(*v) && finite(*l) && finite(*h))
        {
            return None;
        }
        let lo = points
            .iter()
            .map(|(_, v, [l, _])| v.min(*l))
            .fold(0.0_f64, f64::min);
        let hi = points
            .iter()
            .map(|(_, v, [_, h])| v.max(*h))
            .fold(0.0_f64, f64::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let plot = HEIGHT - TOP - BOTTOM;
        let y_of = |v: f64| TOP + (hi - v) / span * plot;
        let slot = WIDTH / points.len() as f64;
        let width = (slot * 0.6).max(2.0);
        let zero = y_of(0.0);
        let bars = points
            .iter()
            .enumerate()
            .map(|(i, (label, v, [l, h]))| {
                let x = i as f64 * slot + (slot - width) / 2.0;
                let top = y_of(v.max(0.0));
                Bar {
                    label: label.clone(),
                    value: number(*v),
                    interval: format!("{} to {}", number(*l), number(*h)),
                    x,
                    y: top,
                    width,
                    height: (y_of(v.min(0.0)) - top).max(0.5),
                    mid: x + width / 2.0,
                    low: y_of(*l),
                    high: y_of(*h),
                    label_y: HEIGHT - BOTTOM + 16.0,
                }
            })
            .collect();
        Some(Chart {
            title: title.to_owned(),
            width: WIDTH,
            height: HEIGHT,
            zero,
            bars,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiskers_span_the_interval_and_bars_start_at_zero() {
        let chart = Chart::bars(
            "count",
            &[
                ("a".into(), 10.0, [8.0, 12.0]),
                ("b".into(), -2.0, [-4.0, 1.0]),
            ],
        )
        .unwrap();
        let [a, b] = &chart.bars[..] else { panic!() };
        // Higher values are higher up (smaller y).
        assert!(a.high < a.y && a.y < a.low && a.low < chart.zero);
        assert!((a.y + a.height - chart.zero).abs() < 1e-9);
        // A negative bar hangs from the zero line.
        assert!((b.y - chart.zero).abs() < 1e-9 && b.low > b.y + b.height - 1e-9);
        assert_eq!(a.interval, "8 to 12");
    }

    #[test]
    fn no_chart_for_nothing_or_for_too_much() {
        assert!(Chart::bars("x", &[]).is_none());
        let many: Vec<_> = (0..=MAX_BARS)
            .map(|i| (i.to_string(), 1.0, [0.0, 2.0]))
            .collect();
        assert!(Chart::bars("x", &many).is_none());
        assert!(Chart::bars("x", &[("a".into(), f64::NAN, [0.0, 1.0])]).is_none());
    }
}
