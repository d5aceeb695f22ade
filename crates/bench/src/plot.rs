//! `--plot FILE.svg`: two charts side by side, drawn with plotters' SVG
//! backend (text is SVG `<text>`, so no font library is needed):
//!
//! - the latency distribution as a percentile curve (HdrHistogram style):
//!   x is 1/(1−q) on a log scale, labelled as percentiles (50%, 90%, 99%,
//!   99.9%…), y the latency in ms;
//! - deliveries per second over time, one point per `run::TIMELINE_US`
//!   interval from the first publish.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::run::TIMELINE_US;

/// Caption of the latency chart.
const LATENCY_CAPTION: &str = "latency percentiles (ms)";
/// Caption of the throughput chart.
const THROUGHPUT_CAPTION: &str = "deliveries/s over time (s from first publish)";

/// Writes the plot of `latencies` (µs) and `timeline` (deliveries per
/// interval of the run's clock, from time zero) to `path`; the time axis
/// starts at `start_us`, the first publish.
pub(crate) fn write(
    path: &Path,
    title: &str,
    latencies: &Histogram<u64>,
    timeline: &[u64],
    start_us: u64,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(600);

    let curve = percentile_curve(latencies);
    let x_max = curve.last().map_or(10.0, |p| p.0).max(10.0);
    let y_max = curve.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .caption(LATENCY_CAPTION, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(curve, &BLUE))
        .map_err(|e| err(&e))?
        .label("latency");

    let rate = throughput(timeline, start_us);
    let t_max = rate
        .last()
        .map_or(1.0, |p| p.0)
        .max(TIMELINE_US as f64 / 1e6);
    let r_max = rate.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.05;
    let mut chart = ChartBuilder::on(&right)
        .caption(THROUGHPUT_CAPTION, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..r_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("s")
        .y_desc("deliveries/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(rate, &RED))
        .map_err(|e| err(&e))?
        .label("deliveries/s");
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// (1/(1−q), latency ms) at each recorded step of the histogram.
fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    // The last point (q = 1) sits one decade past the finest resolvable
    // percentile, 1/len.
    let top = 10.0 * h.len() as f64;
    h.iter_quantiles(2)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                top
            } else {
                (1.0 / (1.0 - q)).min(top)
            };
            (x, v.value_iterated_to() as f64 / 1000.0)
        })
        .collect()
}

/// 1/(1−q) → "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let mut s = format!("{p:.4}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    format!("{s}%")
}

/// (seconds from `start_us`, deliveries/s) per interval, from the interval
/// holding `start_us` to the last one with a delivery.
fn throughput(timeline: &[u64], start_us: u64) -> Vec<(f64, f64)> {
    let first = usize::try_from(start_us / TIMELINE_US).unwrap_or(usize::MAX);
    let last = timeline.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
    let per_sec = 1e6 / TIMELINE_US as f64;
    (first..last.max(first))
        .map(|i| {
            let t = (i as f64 - first as f64 + 1.0) * TIMELINE_US as f64 / 1e6;
            (t, timeline[i] as f64 * per_sec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_is_svg_with_both_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap();
        }
        // 0.5 s of nothing, then 1.0 s of deliveries.
        let timeline: Vec<u64> = (0..15).map(|i| if i < 5 { 0 } else { 1000 + i }).collect();
        write(&path, "smoke", &h, &timeline, 400_000).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        // Well formed: every element closes (quick-xml reads it to the end).
        let mut reader = quick_xml::Reader::from_str(&svg);
        let mut depth = 0i64;
        loop {
            match reader.read_event().unwrap() {
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
        // The two series: one polyline each in its colour, with a point
        // per step (the mesh is drawn in light greys).
        for colour in ["#0000FF", "#FF0000"] {
            let lines: Vec<&str> = svg
                .split("<polyline")
                .skip(1)
                .filter(|l| l.contains(&format!("stroke=\"{colour}\"")))
                .collect();
            assert_eq!(lines.len(), 1, "{colour}");
            assert!(
                lines[0].matches(',').count() >= 11,
                "{colour}: {}",
                lines[0]
            );
        }
        for text in [LATENCY_CAPTION, THROUGHPUT_CAPTION, "smoke", "99.9%"] {
            assert!(svg.contains(&xml_escaped(text)), "{text} missing");
        }
        // The throughput series: 10,000+/s in its points' range, starting
        // at the first publish's interval.
        let rate = throughput(&timeline, 400_000);
        assert_eq!(rate.len(), 11);
        assert_eq!(rate[0], (0.1, 0.0));
        assert_eq!(rate[10], (1.1, 10_140.0));
    }

    fn xml_escaped(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    #[test]
    fn percentile_labels_read_as_percentiles() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }

    #[test]
    fn an_empty_run_still_plots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        let h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        write(&path, "empty", &h, &[], 0).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("</svg>"));
    }
}
