//! Seat usage over time, drawn on the server as SVG (no chart library): the
//! Product screen's chart of assigned seats against the seat count, and the
//! Licenses screen's sparklines. The points come from the daily snapshots
//! (`seat_snapshots`), with today's live figures as the last one.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One day's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePoint {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub seats: i64,
    pub assigned: i64,
}

/// `YYYY-MM-DD` of a day since the epoch, without a date library in the
/// browser bundle (days to civil date, Howard Hinnant's algorithm).
pub fn date_of(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// SVG polyline points for `value` of each reading, in a box.
fn line(points: &[UsagePoint], first_day: i64, last_day: i64, top: i64, frame: Frame, value: fn(&UsagePoint) -> i64) -> String {
    points
        .iter()
        .map(|point| {
            let (x, y) = frame.place(point.day, value(point), first_day, last_day, top);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Clone, Copy)]
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Frame {
    /// Where `value` on `day` goes, for days `first_day..=last_day` and
    /// values `0..=top`.
    fn place(self, day: i64, value: i64, first_day: i64, last_day: i64, top: i64) -> (f64, f64) {
        let span = (last_day - first_day).max(1) as f64;
        let x = self.left + (day - first_day) as f64 / span * self.width;
        let y = self.top + self.height - value as f64 / top.max(1) as f64 * self.height;
        (x, y)
    }
}

/// The latest reading of assigned seats as a dot: a line of no length with
/// round ends (style.css), which stays round in a stretched chart. It also
/// shows a product with one day of readings, whose lines have one point and
/// so no length.
fn latest_dot(at: Option<(f64, f64)>) -> impl IntoView {
    at.map(|(x, y)| {
        let (x, y) = (format!("{x:.1}"), format!("{y:.1}"));
        view! { <line class="latest" x1=x.clone() y1=y.clone() x2=x y2=y /> }
    })
}

/// What both drawings need: the top of the scale and the two lines (seats,
/// assigned) in `frame`, for `days` days up to `today`.
struct Lines {
    first_day: i64,
    top: i64,
    seats: String,
    assigned: String,
    /// Where the latest reading of assigned seats is.
    latest: Option<(f64, f64)>,
}

impl Lines {
    fn draw(points: &[UsagePoint], days: i64, today: i64, frame: Frame) -> Self {
        let first_day = today - days + 1;
        let top = points.iter().map(|p| p.seats.max(p.assigned)).max().unwrap_or(0).max(1);
        Lines {
            first_day,
            top,
            seats: line(points, first_day, today, top, frame, |p| p.seats),
            assigned: line(points, first_day, today, top, frame, |p| p.assigned),
            latest: points.last().map(|now| frame.place(now.day, now.assigned, first_day, today, top)),
        }
    }
}

/// Assigned seats (solid) against the seat count (dashed) over `days` days
/// up to `today`.
#[component]
pub fn UsageChart(points: Vec<UsagePoint>, days: i64, today: i64) -> impl IntoView {
    let frame = Frame { left: 36.0, top: 10.0, width: 590.0, height: 150.0 };
    let Lines { first_day, top, seats, assigned, latest } = Lines::draw(&points, days, today, frame);
    let peak = points.iter().map(|p| p.assigned).max().unwrap_or(0);
    let label = match points.last() {
        Some(now) => format!(
            "Assigned seats over the last {days} days: now {} of {} seats, at most {peak}.",
            now.assigned, now.seats
        ),
        None => format!("No usage recorded in the last {days} days."),
    };
    let title = label.clone();
    view! {
        <figure class="usage">
            <svg viewBox="0 0 640 190" role="img" aria-label=label preserveAspectRatio="none">
                <title>{title}</title>
                <line class="axis" x1="36" y1="160" x2="626" y2="160" />
                <line class="axis" x1="36" y1="10" x2="36" y2="160" />
                <text class="tick" x="30" y="14" text-anchor="end">{top}</text>
                <text class="tick" x="30" y="160" text-anchor="end">"0"</text>
                <text class="tick" x="36" y="178">{date_of(first_day)}</text>
                <text class="tick" x="626" y="178" text-anchor="end">{date_of(today)}</text>
                <polyline class="seats" points=seats />
                <polyline class="assigned" points=assigned />
                {latest_dot(latest)}
            </svg>
            <figcaption>
                <span class="key assigned">"Assigned"</span>
                <span class="key seats">"Seats"</span>
            </figcaption>
        </figure>
    }
}

/// A word-sized trend of assigned seats against seats.
#[component]
pub fn Sparkline(points: Vec<UsagePoint>, days: i64, today: i64) -> impl IntoView {
    let frame = Frame { left: 1.0, top: 2.0, width: 78.0, height: 18.0 };
    let Lines { seats, assigned, latest, .. } = Lines::draw(&points, days, today, frame);
    let label = match (points.first(), points.last()) {
        (Some(first), Some(last)) => format!("Assigned over {days} days: from {} to {}", first.assigned, last.assigned),
        _ => "No usage recorded yet".to_owned(),
    };
    let title = label.clone();
    view! {
        <svg class="sparkline" viewBox="0 0 80 22" width="80" height="22" role="img" aria-label=label>
            <title>{title}</title>
            <polyline class="seats" points=seats />
            <polyline class="assigned" points=assigned />
            {latest_dot(latest)}
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(20_786), "2026-11-29");
        assert_eq!(date_of(11_016), "2000-02-29");
        assert_eq!(date_of(-1), "1969-12-31");
    }

    #[test]
    fn a_line_spans_its_frame() {
        let frame = Frame { left: 0.0, top: 0.0, width: 100.0, height: 10.0 };
        let points = [UsagePoint { day: 10, seats: 4, assigned: 0 }, UsagePoint { day: 20, seats: 4, assigned: 4 }];
        assert_eq!(line(&points, 10, 20, 4, frame, |p| p.assigned), "0.0,10.0 100.0,0.0");
    }

    #[test]
    fn the_latest_reading_is_marked_even_when_it_is_the_only_one() {
        let frame = Frame { left: 0.0, top: 0.0, width: 100.0, height: 10.0 };
        let today = [UsagePoint { day: 20, seats: 4, assigned: 1 }];
        let lines = Lines::draw(&today, 11, 20, frame);
        assert_eq!(lines.assigned, "100.0,7.5", "a line of one point, which draws nothing");
        assert_eq!(lines.latest, Some((100.0, 7.5)));
        assert_eq!(Lines::draw(&[], 11, 20, frame).latest, None, "nothing recorded, nothing marked");
    }
}
