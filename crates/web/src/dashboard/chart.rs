//! Charts drawn on the server as inline SVG: no script, no inline style (colours come from CSS classes `s0`…`s7`),
//! so they pass the strict Content-Security-Policy and render with no network. Each chart has a `<title>` and an
//! `aria-label`, and each point or bar a `<title>` with its exact value, for screen readers and hover.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Escapes text for SVG/HTML.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One named series of a chart; `None` is a gap (no data in that bucket).
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// The top of the y axis: four ticks of a round step (1, 2 or 5 times a power of ten) reaching `max`. `whole`: the
/// values are counts, so a step is never below 1.
fn nice_max(max: f64, whole: bool) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 4.0;
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|s| s * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    if whole { step.max(1.0) * 4.0 } else { step * 4.0 }
}

fn label_number(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{:.1}k", v / 1000.0).replace(".0k", "k")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        // Small values keep three decimals, trailing zeros dropped: 0.25, 0.004.
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" preserveAspectRatio="none"><title>{t}</title>"#,
        t = esc(title)
    );
}

/// Horizontal grid lines and y labels from 0 to `max`.
fn grid(out: &mut String, max: f64, unit: &str) {
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = TOP + (H - TOP - BOTTOM) * (1.0 - f64::from(i) / 4.0);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{lx}" y="{ty:.1}" text-anchor="end">{label}{unit}</text>"#,
            x2 = W - RIGHT,
            lx = LEFT - 6.0,
            ty = y + 4.0,
            label = label_number(v),
            unit = esc(unit),
        );
    }
}

/// X labels: at most about 8, evenly spread.
fn x_labels(out: &mut String, labels: &[String], x_of: impl Fn(usize) -> f64) {
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % every == 0 || i + 1 == labels.len() && labels.len() <= 8 {
            // The labels at the edges are anchored inwards so they are not cut off.
            let anchor = if i == 0 && labels.len() > 1 {
                "start"
            } else if i + 1 == labels.len() && labels.len() > 1 {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                out,
                r#"<text class="axis" x="{x:.1}" y="{y}" text-anchor="{anchor}">{l}</text>"#,
                x = x_of(i),
                y = H - 8.0,
                l = esc(label)
            );
        }
    }
}

/// A line chart of one or more series over the same x labels. `max`: the top of the y axis (or the data's).
pub fn line(title: &str, labels: &[String], series: &[Series], max: Option<f64>, unit: &str) -> String {
    let data_max = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0f64, |a, b| a.max(*b));
    let max = max.unwrap_or_else(|| nice_max(data_max, false));
    let n = labels.len().max(1);
    let plot_w = W - LEFT - RIGHT;
    let x_of = |i: usize| if n == 1 { LEFT + plot_w / 2.0 } else { LEFT + plot_w * i as f64 / (n - 1) as f64 };
    let y_of = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v / max).clamp(0.0, 1.0));
    let mut out = String::new();
    open(&mut out, title);
    grid(&mut out, max, unit);
    x_labels(&mut out, labels, x_of);
    for (k, s) in series.iter().enumerate() {
        let class = format!("s{}", k % 8);
        // One path per run of consecutive values, so gaps stay gaps.
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x_of(i), y_of(*v));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(out, r#"<path class="line {class}" d="{}"/>"#, d.trim_end());
        }
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                let label = labels.get(i).map(String::as_str).unwrap_or_default();
                let _ = write!(
                    out,
                    r#"<circle class="dot {class}" cx="{:.1}" cy="{:.1}" r="3"><title>{}: {} {}{}</title></circle>"#,
                    x_of(i),
                    y_of(*v),
                    esc(&s.name),
                    esc(label),
                    label_number(*v),
                    esc(unit)
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// Stacked bars: one bar per label, one segment per series (values ≥ 0).
pub fn stacked_bars(title: &str, labels: &[String], series: &[Series]) -> String {
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| series.iter().map(|s| s.values.get(i).copied().flatten().unwrap_or(0.0)).sum())
        .collect();
    let max = nice_max(totals.iter().fold(0.0f64, |a, b| a.max(*b)), true);
    let n = labels.len().max(1);
    let plot_w = W - LEFT - RIGHT;
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let x_of = |i: usize| LEFT + slot * i as f64 + slot / 2.0;
    let plot_h = H - TOP - BOTTOM;
    let mut out = String::new();
    open(&mut out, title);
    grid(&mut out, max, "");
    x_labels(&mut out, labels, x_of);
    for (i, label) in labels.iter().enumerate() {
        let mut base = 0.0;
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = plot_h * v / max;
            let y = TOP + plot_h * (1.0 - (base + v) / max);
            let _ = write!(
                out,
                r#"<rect class="bar s{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{} {}: {}</title></rect>"#,
                k % 8,
                x_of(i) - bar_w / 2.0,
                y,
                bar_w,
                h,
                esc(label),
                esc(&s.name),
                label_number(v)
            );
            base += v;
        }
    }
    out.push_str("</svg>");
    out
}

/// A legend for series drawn with classes `s0`…: HTML, to sit under a chart.
pub fn legend(names: &[String]) -> String {
    let mut out = String::from(r#"<ul class="legend">"#);
    for (k, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            r#"<li><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true"><rect class="bar s{}" width="10" height="10"/></svg>{}</li>"#,
            k % 8,
            esc(name)
        );
    }
    out.push_str("</ul>");
    out
}

/// A small inline meter (0–100) for tables, e.g. a health score.
pub fn meter(value: f64, label: &str) -> String {
    let v = value.clamp(0.0, 100.0);
    let class = if v >= 70.0 {
        "good"
    } else if v >= 40.0 {
        "fair"
    } else {
        "poor"
    };
    format!(
        r#"<svg class="meter" viewBox="0 0 100 8" role="img" aria-label="{l}"><rect class="track" width="100" height="8" rx="2"/><rect class="fill {class}" width="{v:.0}" height="8" rx="2"/></svg>"#,
        l = esc(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_numbers_above_the_data() {
        assert_eq!(nice_max(0.0, true), 4.0);
        assert_eq!(nice_max(2.0, true), 4.0, "counts get whole ticks: 1, 2, 3, 4 (not 0.5, 1, 1.5, 2)");
        assert_eq!(nice_max(3.0, true), 4.0);
        assert_eq!(nice_max(7.0, true), 8.0);
        assert_eq!(nice_max(13.0, true), 20.0);
        assert_eq!(nice_max(240.0, true), 400.0);
        assert_eq!(nice_max(1001.0, true), 2000.0);
        assert!((nice_max(0.5, false) - 0.8).abs() < 1e-9, "seconds may have fractional ticks");
        assert!((nice_max(2.0, false) - 2.0).abs() < 1e-9);
        assert_eq!(label_number(0.25), "0.25");
        assert_eq!(label_number(0.004), "0.004");
        assert_eq!(label_number(2.5), "2.5");
    }

    #[test]
    fn line_charts_keep_gaps_and_escape_labels() {
        let svg = line(
            "Health <7d>",
            &["a".into(), "b".into(), "c".into()],
            &[Series { name: "avg".into(), values: vec![Some(50.0), None, Some(80.0)] }],
            Some(100.0),
            "",
        );
        assert!(svg.contains("Health &lt;7d&gt;"));
        assert_eq!(svg.matches("<path").count(), 1);
        // Two separate runs: two M commands, no L joining across the gap.
        assert_eq!(svg.matches('M').count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(!svg.contains("style="));
    }

    #[test]
    fn stacked_bars_stack_segments_and_skip_zeros() {
        let svg = stacked_bars(
            "Failures",
            &["d1".into(), "d2".into()],
            &[
                Series { name: "loop".into(), values: vec![Some(2.0), Some(0.0)] },
                Series { name: "refusal".into(), values: vec![Some(3.0), Some(1.0)] },
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("d1 refusal: 3"));
    }
}
