//! Seat usage over time, drawn on the server as SVG (no chart library): the
//! Product screen's chart of assigned seats and refused devices against the
//! seat count, and the Licenses screen's sparklines. The points come from
//! the daily snapshots (`seat_snapshots`) and refusal counts, with today's
//! live figures as the last one.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One day's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePoint {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub seats: i64,
    pub assigned: i64,
    /// Devices refused for want of a seat that day.
    #[serde(default)]
    pub refused: i64,
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
    refused: String,
    /// Where the latest reading of assigned seats is.
    latest: Option<(f64, f64)>,
}

impl Lines {
    /// With fewer than two readings there is no history to draw: the seat
    /// count is a line across the whole range.
    fn draw(points: &[UsagePoint], days: i64, today: i64, frame: Frame) -> Self {
        let first_day = today - days + 1;
        let top = points.iter().map(|p| p.seats.max(p.assigned).max(p.refused)).max().unwrap_or(0).max(1);
        let seats = match points {
            [only] => {
                let across = [UsagePoint { day: first_day, ..*only }, UsagePoint { day: today, ..*only }];
                line(&across, first_day, today, top, frame, |p| p.seats)
            }
            _ => line(points, first_day, today, top, frame, |p| p.seats),
        };
        Lines {
            first_day,
            top,
            seats,
            assigned: line(points, first_day, today, top, frame, |p| p.assigned),
            refused: if points.iter().any(|p| p.refused > 0) {
                line(points, first_day, today, top, frame, |p| p.refused)
            } else {
                String::new()
            },
            latest: points.last().map(|now| frame.place(now.day, now.assigned, first_day, today, top)),
        }
    }
}

/// Assigned seats (solid) against the seat count (dashed) over `days` days
/// up to `today`.
#[component]
pub fn UsageChart(points: Vec<UsagePoint>, days: i64, today: i64) -> impl IntoView {
    let frame = Frame { left: 36.0, top: 10.0, width: 590.0, height: 150.0 };
    let Lines { first_day, top, seats, assigned, refused, latest } = Lines::draw(&points, days, today, frame);
    let peak = points.iter().map(|p| p.assigned).max().unwrap_or(0);
    let refusals = points.iter().map(|p| p.refused).max().unwrap_or(0);
    let starts_today = points.len() < 2;
    let label = match points.last() {
        Some(now) if starts_today => format!("History starts today: {} of {} seats assigned.", now.assigned, now.seats),
        Some(now) => format!(
            "Assigned seats over the last {days} days: now {} of {} seats, at most {peak}{}.",
            now.assigned,
            now.seats,
            if refusals > 0 { format!("; up to {refusals} devices refused a day") } else { String::new() }
        ),
        None => format!("No usage recorded in the last {days} days."),
    };
    let has_refusals = !refused.is_empty();
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
                {has_refusals.then(|| view! { <polyline class="refused" points=refused /> })}
                {latest_dot(latest.filter(|_| !starts_today))}
            </svg>
            <figcaption>
                <span class="key assigned">"Assigned"</span>
                <span class="key seats">"Seats"</span>
                {has_refusals.then(|| view! { <span class="key refused">"Devices refused"</span> })}
                {starts_today.then(|| view! { <span class="history">"History starts today"</span> })}
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
        let points = [UsagePoint { day: 10, seats: 4, assigned: 0, refused: 0 }, UsagePoint { day: 20, seats: 4, assigned: 4, refused: 0 }];
        assert_eq!(line(&points, 10, 20, 4, frame, |p| p.assigned), "0.0,10.0 100.0,0.0");
    }

    #[test]
    fn a_single_reading_draws_the_seats_across_the_range() {
        let frame = Frame { left: 0.0, top: 0.0, width: 100.0, height: 10.0 };
        let today = [UsagePoint { day: 20, seats: 4, assigned: 1, refused: 0 }];
        let lines = Lines::draw(&today, 11, 20, frame);
        assert_eq!(lines.seats, "0.0,0.0 100.0,0.0", "the seat count across the whole range");
        assert_eq!(lines.latest, Some((100.0, 7.5)), "where it stands (the sparkline's dot; the chart says its history starts today)");
        assert_eq!(lines.refused, "", "no refusals, no line");
        let two = [UsagePoint { day: 19, seats: 4, assigned: 1, refused: 8 }, UsagePoint { day: 20, seats: 4, assigned: 2, refused: 0 }];
        let lines = Lines::draw(&two, 11, 20, frame);
        assert_eq!(lines.top, 8, "the scale takes the refusals in");
        assert_eq!(lines.latest, Some((100.0, 7.5)));
        assert_eq!(lines.refused, "90.0,0.0 100.0,10.0");
        assert_eq!(Lines::draw(&[], 11, 20, frame).latest, None, "nothing recorded, nothing marked");
    }
}
