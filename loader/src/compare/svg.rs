//! The per-op cycles of a comparison as an SVG grouped bar chart: one group per `bench` name,
//! one bar per backend and variant (native, burnt), a logarithmic y axis, min–max whiskers.
//! Hand-written SVG 1.1 text; no dependency.

use std::fmt::Write as _;

use super::{Comparison, Status, Summary};

/// One bar series: a backend and variant with its figures.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text, e.g. `bare native`.
    pub label: String,
    /// Index of the backend (picks the colour pair).
    pub backend_index: usize,
    /// Whether this is the afterburnt kernel (the lighter colour).
    pub burnt: bool,
    /// `bench` figures by name.
    pub values: Vec<(String, Summary)>,
}

/// What the chart shows.
#[derive(Clone, Debug)]
pub struct ChartInput {
    /// Title line.
    pub title: String,
    /// Second line (host, runs, date).
    pub subtitle: String,
    /// Bar series.
    pub series: Vec<Series>,
    /// Footnotes (skipped backends, identical files).
    pub notes: Vec<String>,
}

impl ChartInput {
    /// The chart of one comparison.
    pub fn from(c: &Comparison) -> ChartInput {
        let mut series = Vec::new();
        let mut notes = Vec::new();
        for (i, b) in c.backends.iter().enumerate() {
            if b.status == Status::Skipped {
                notes.push(format!(
                    "{}: skipped ({})",
                    b.backend.name(),
                    b.skip_reason.as_deref().unwrap_or("?")
                ));
                continue;
            }
            for (v, burnt) in [(&b.native, false), (&b.burnt, true)] {
                if let Some(f) = &v.figures {
                    series.push(Series {
                        label: format!(
                            "{} {}",
                            b.backend.name(),
                            if burnt { "burnt" } else { "native" }
                        ),
                        backend_index: i,
                        burnt,
                        values: f.bench.clone(),
                    });
                }
            }
        }
        if c.identical_files {
            notes.push(
                "the burnt kernel file is identical to the native one (no afterburner)".into(),
            );
        }
        ChartInput {
            title: format!(
                "{}: cycles per operation, native vs afterburnt (host {})",
                super::report::title(c),
                c.host
            ),
            subtitle: format!(
                "median of {} run{} per bar, whiskers min–max · afterburn-run compare · {}",
                c.runs,
                if c.runs == 1 { "" } else { "s" },
                c.date
            ),
            series,
            notes,
        }
    }
}

/// `&`, `<`, `>`, `"` escaped for XML text and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Colour pairs (native, burnt) per backend index.
const COLOURS: [(&str, &str); 3] = [
    ("#1f5f99", "#8fc1e8"),
    ("#c44e0a", "#f9b47a"),
    ("#2b7d3a", "#a3d9a5"),
];

/// `1`, `10`, `100`, `1k`, ... `1G`: the label of 10^e.
fn decade_label(e: i32) -> String {
    let (unit, rest) = match e {
        e if e >= 9 => ("G", e - 9),
        e if e >= 6 => ("M", e - 6),
        e if e >= 3 => ("k", e - 3),
        e => ("", e),
    };
    if rest >= 0 {
        format!("{}{unit}", 10u64.pow(rest.unsigned_abs()))
    } else {
        format!("{}", 10f64.powi(rest))
    }
}

/// The SVG document.
pub fn chart(input: &ChartInput) -> String {
    let mut names: Vec<&str> = Vec::new();
    for s in &input.series {
        for (n, _) in &s.values {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let positive: Vec<f64> = input
        .series
        .iter()
        .flat_map(|s| s.values.iter())
        .flat_map(|(_, v)| [v.min, v.max, v.median])
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    let nseries = input.series.len().max(1);
    let ngroups = names.len().max(1);
    let left = 90.0;
    let width = (left + 30.0 + ngroups as f64 * (nseries as f64 * 16.0 + 26.0)).max(760.0);
    let legend_rows = nseries.div_ceil(4);
    let height = 430.0 + 22.0 * legend_rows as f64 + 18.0 * input.notes.len() as f64;
    let (top, bottom, right) = (78.0, 360.0, width - 30.0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(
        o,
        r##"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="30" font-size="18" font-weight="bold" text-anchor="middle" fill="#222">{}</text>"##,
        width / 2.0,
        esc(&input.title)
    );
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="52" font-size="12" text-anchor="middle" fill="#555">{}</text>"##,
        width / 2.0,
        esc(&input.subtitle)
    );
    if positive.is_empty() {
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" font-size="14" text-anchor="middle" fill="#555">no bench lines to draw</text>"##,
            width / 2.0,
            (top + bottom) / 2.0
        );
    } else {
        let lo_v = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let hi_v = positive.iter().copied().fold(0.0, f64::max);
        let lo = lo_v.log10().floor() as i32;
        let mut hi = hi_v.log10().ceil() as i32;
        if hi <= lo {
            hi = lo + 1;
        }
        let y_of = |v: f64| {
            let t = (v.log10() - f64::from(lo)) / f64::from(hi - lo);
            bottom - t.clamp(0.0, 1.0) * (bottom - top)
        };
        // Grid: decades solid, 2x and 5x dashed.
        for e in lo..=hi {
            let d = 10f64.powi(e);
            let y = y_of(d);
            let _ = writeln!(
                o,
                r##"<line x1="{left}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#c8c8c8" stroke-width="1"/>"##
            );
            let _ = writeln!(
                o,
                r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end" fill="#333">{}</text>"##,
                left - 8.0,
                y + 4.0,
                decade_label(e)
            );
            if e < hi {
                for m in [2.0, 5.0] {
                    let y = y_of(d * m);
                    let _ = writeln!(
                        o,
                        r##"<line x1="{left}" y1="{y:.1}" x2="{right:.1}" y2="{y:.1}" stroke="#e4e4e4" stroke-width="1" stroke-dasharray="4 3"/>"##
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            r##"<text transform="translate(24 {:.1}) rotate(-90)" font-size="13" text-anchor="middle" fill="#333">TSC cycles per operation (log scale)</text>"##,
            (top + bottom) / 2.0
        );
        let gw = (right - left) / ngroups as f64;
        let bw = gw * 0.8 / nseries as f64;
        let rotate = gw < 72.0;
        for (g, name) in names.iter().enumerate() {
            let gx = left + g as f64 * gw;
            for (si, s) in input.series.iter().enumerate() {
                let Some((_, v)) = s.values.iter().find(|(n, _)| n == name) else {
                    continue;
                };
                let x = gx + gw * 0.1 + si as f64 * bw;
                let (native_c, burnt_c) = COLOURS[s.backend_index % COLOURS.len()];
                let colour = if s.burnt { burnt_c } else { native_c };
                if v.median > 0.0 {
                    let y = y_of(v.median);
                    let _ = writeln!(
                        o,
                        r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}" stroke="#333" stroke-width="0.5"><title>{} {}: median {} (min {}, max {})</title></rect>"##,
                        (bw - 1.0).max(1.0),
                        (bottom - y).max(0.5),
                        esc(&s.label),
                        esc(name),
                        super::report::num(v.median),
                        super::report::num(v.min),
                        super::report::num(v.max)
                    );
                }
                if v.min > 0.0 && v.max > v.min {
                    let cx = x + (bw - 1.0).max(1.0) / 2.0;
                    let (y1, y2) = (y_of(v.min), y_of(v.max));
                    let _ = writeln!(
                        o,
                        r##"<path d="M{cx:.1} {y1:.1}V{y2:.1}M{:.1} {y1:.1}h{:.1}M{:.1} {y2:.1}h{:.1}" stroke="#222" stroke-width="1" fill="none"/>"##,
                        cx - bw * 0.2,
                        bw * 0.4,
                        cx - bw * 0.2,
                        bw * 0.4
                    );
                }
            }
            let lx = gx + gw / 2.0;
            if rotate {
                let _ = writeln!(
                    o,
                    r##"<text transform="translate({lx:.1} {:.1}) rotate(-35)" font-size="12" text-anchor="end" fill="#222">{}</text>"##,
                    bottom + 16.0,
                    esc(name)
                );
            } else {
                let _ = writeln!(
                    o,
                    r##"<text x="{lx:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#222">{}</text>"##,
                    bottom + 18.0,
                    esc(name)
                );
            }
        }
        let _ = writeln!(
            o,
            r##"<line x1="{left}" y1="{bottom}" x2="{right:.1}" y2="{bottom}" stroke="#333" stroke-width="1"/><line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333" stroke-width="1"/>"##
        );
    }
    // Legend.
    let ly0 = bottom + 62.0;
    for (i, s) in input.series.iter().enumerate() {
        let (row, col) = (i / 4, i % 4);
        let x = left + col as f64 * 170.0;
        let y = ly0 + row as f64 * 22.0;
        let (native_c, burnt_c) = COLOURS[s.backend_index % COLOURS.len()];
        let colour = if s.burnt { burnt_c } else { native_c };
        let _ = writeln!(
            o,
            r##"<rect x="{x:.1}" y="{:.1}" width="14" height="14" fill="{colour}" stroke="#333" stroke-width="0.5"/><text x="{:.1}" y="{y:.1}" font-size="13" fill="#222">{}</text>"##,
            y - 11.0,
            x + 20.0,
            esc(&s.label)
        );
    }
    let ny0 = ly0 + 22.0 * legend_rows as f64 + 8.0;
    for (i, n) in input.notes.iter().enumerate() {
        let _ = writeln!(
            o,
            r##"<text x="{left}" y="{:.1}" font-size="11" fill="#555">{}</text>"##,
            ny0 + 18.0 * i as f64,
            esc(n)
        );
    }
    o.push_str("</svg>\n");
    o
}
