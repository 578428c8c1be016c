//! Charts drawn as inline SVG on the server: no script, no external library, readable by
//! screen readers through their label and the table beside them.

use maud::{Markup, html};

/// One bar group: a label under it and two values side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub(crate) label: String,
    pub(crate) first: u64,
    pub(crate) second: u64,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 220;
const BOTTOM: u32 = 24;
const TOP: u32 = 8;

/// Bars of `first` (in front) and `second` (behind, wider) per group, scaled to the largest
/// value; `label` describes the chart for assistive technology.
pub(crate) fn paired_bars(pairs: &[Pair], label: &str) -> Markup {
    let max = pairs.iter().map(|p| p.first.max(p.second)).max().unwrap_or(0).max(1);
    let count = u32::try_from(pairs.len()).unwrap_or(u32::MAX).max(1);
    let slot = WIDTH / count;
    let plot = HEIGHT - BOTTOM - TOP;
    let height = |value: u64| -> u32 {
        let scaled = u128::from(value) * u128::from(plot) / u128::from(max);
        u32::try_from(scaled).unwrap_or(plot)
    };
    // Label every nth group so labels never overlap.
    let every = (pairs.len() / 10).max(1);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            line x1="0" y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#d5dae0" {}
            @for (i, pair) in pairs.iter().enumerate() {
                @let x = u32::try_from(i).unwrap_or(0) * slot;
                @let back = height(pair.second);
                @let front = height(pair.first);
                rect.bar-reference x=(x + slot / 8) y=(HEIGHT - BOTTOM - back) width=((slot * 3 / 4).max(1)) height=(back) {}
                rect.bar-spend x=(x + slot / 4) y=(HEIGHT - BOTTOM - front) width=((slot / 2).max(1)) height=(front) {}
                @if i % every == 0 {
                    text x=(x + slot / 2) y=(HEIGHT - 8) text-anchor="middle" { (pair.label) }
                }
            }
        }
    }
}

/// A horizontal meter for a share (percent, clamped to 0–100 for drawing).
pub(crate) fn meter(percent: f64, label: &str) -> Markup {
    let shown = percent.clamp(0.0, 100.0);
    html! {
        div.meter.over[percent >= 100.0] role="meter" aria-label=(label) aria-valuemin="0" aria-valuemax="100"
            aria-valuenow=(format!("{shown:.0}")) {
            span style=(format!("width:{shown:.1}%")) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(label: &str, first: u64, second: u64) -> Pair {
        Pair { label: label.into(), first, second }
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = paired_bars(&[pair("a<b", 50, 100), pair("c", 0, 0)], "spend").into_string();
        // The reference bar of 100 fills the plot (220 - 24 - 8 = 188), spend half of it.
        assert!(svg.contains("height=\"188\""), "{svg}");
        assert!(svg.contains("height=\"94\""), "{svg}");
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"), "{svg}");
        assert!(svg.contains("role=\"img\" aria-label=\"spend\""), "{svg}");
        // Nothing at all still draws an empty chart.
        assert!(paired_bars(&[], "empty").into_string().contains("<svg"));
    }

    #[test]
    fn meters_clamp_and_mark_overruns() {
        let over = meter(130.0, "budget").into_string();
        assert!(over.contains("width:100.0%") && over.contains("meter over"), "{over}");
        assert!(meter(42.0, "budget").into_string().contains("aria-valuenow=\"42\""));
    }
}
