//! What both backends and the server share about webhooks: which URLs an
//! endpoint may have (no server-side request forgery), its signing secret,
//! what the alerts tell, and the attempts' pages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::json;

use crate::{Attempted, DeliveryAttempt, OrgId, Page, PageRequest, Result, StoreError, Timestamp, WebhookEvent, at_alert_threshold};

/// What a signing secret starts with (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2000;

/// A subscription ending within this many days is told of.
pub(crate) const EXPIRY_NOTICE_DAYS: u64 = 14;

/// At most one `checkin.refused` message per product within this.
pub(crate) const REFUSALS_QUIET: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Where webhooks may be sent: public HTTPS endpoints only, unless the
/// server runs with `--allow-private-webhooks` (tests, private networks),
/// which also allows plain HTTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Destinations {
    pub allow_private: bool,
}

impl Destinations {
    /// The URL's host and port if an endpoint may have it; the words of the
    /// refusal otherwise. A name is resolved at each delivery (see
    /// [`Destinations::allows`]); here only what the URL itself says is checked.
    pub fn check_url(&self, text: &str) -> Result<url::Url> {
        if text.chars().count() > MAX_URL_LEN {
            return Err(StoreError::invalid(format!("url must be at most {MAX_URL_LEN} characters")));
        }
        // A URL parser drops some of these quietly; the URL given would then
        // not be the one stored.
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(StoreError::invalid("url must not contain spaces or control characters"));
        }
        let url = url::Url::parse(text).map_err(|error| StoreError::invalid(format!("url is not a URL: {error}")))?;
        self.check_parsed(url)
    }

    /// [`Self::check_url`] of a URL already parsed (and so written out in
    /// full, percent-encoded: its length is the given text's to keep).
    pub fn check_parsed(&self, url: url::Url) -> Result<url::Url> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(StoreError::invalid("url must start with https://")),
        }
        let refused = |why: &str| Err(StoreError::invalid(format!("url must be a public address: {why}")));
        match url.host() {
            None => return Err(StoreError::invalid("url must name a host")),
            Some(url::Host::Ipv4(ip)) if !self.allows(IpAddr::V4(ip)) => return refused("it is a loopback, private or link-local address"),
            Some(url::Host::Ipv6(ip)) if !self.allows(IpAddr::V6(ip)) => return refused("it is a loopback, private or link-local address"),
            Some(url::Host::Domain(name)) if !self.allow_private && is_local_name(name) => return refused("it names this machine or its network"),
            Some(_) => {}
        }
        Ok(url)
    }

    /// Whether a delivery may connect to this address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }
}

/// Names that always mean this machine or its own network.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local") || name.ends_with(".internal") || !name.contains('.')
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared (carrier-grade NAT), multicast, reserved or
/// unspecified, nor an IPv6 form of such an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., high, low] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

/// A new signing secret: 32 random bytes, as the bytes and as shown
/// (`whsec_` and their base64).
pub fn new_secret() -> (Vec<u8>, String) {
    use base64::Engine;
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is unavailable");
    let shown = format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
    (bytes, shown)
}

/// What a webhook secret is sealed for: its organization.
pub(crate) fn secret_belongs_to(org: OrgId) -> Vec<u8> {
    format!("webhook secret of organization {}", org.0).into_bytes()
}

/// The events a webhook is asked to subscribe to, each named once; at
/// least one.
pub fn parse_events(names: &[String]) -> Result<Vec<WebhookEvent>> {
    let known = || WebhookEvent::ALL.map(WebhookEvent::as_str).join(", ");
    if names.is_empty() {
        return Err(StoreError::invalid(format!("events must name at least one of: {}", known())));
    }
    let mut events = Vec::new();
    for name in names {
        let event = WebhookEvent::parse(name)
            .ok_or_else(|| StoreError::invalid(format!("unknown event {name:?}; the events are: {}", known())))?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

/// An alert's state as a backend reads it from a product's row: the
/// organization, code, seats, seats taken, `alert_at_percent`, whether the
/// threshold was told, refusals counted and told, when last told, the
/// subscription's last day and the last day told as ending.
pub(crate) type AlertRow<T, D> = (i64, String, i64, i64, Option<i64>, bool, i64, i64, T, D, D);

/// What the alerts tell of one product now, and the row's state after.
pub(crate) struct Alert {
    pub org: OrgId,
    code: String,
    seats: i64,
    assigned: i64,
    alert_at_percent: Option<i64>,
    threshold_reached: bool,
    refused: Option<(i64, Option<Timestamp>)>,
    expiring: Option<(chrono::NaiveDate, i64)>,
    pub raised: bool,
    pub refused_told: i64,
    pub refused_told_at: Option<Timestamp>,
    pub expiry_told: Option<chrono::NaiveDate>,
}

impl Alert {
    pub(crate) fn of<T, D>(
        (org, code, seats, assigned, alert_at_percent, was_raised, refused_total, refused_told, told_at, valid_until, expiry_told): AlertRow<T, D>,
        now: Timestamp,
        time: impl Fn(T) -> Option<Timestamp>,
        day: impl Fn(D) -> Option<chrono::NaiveDate>,
    ) -> Alert {
        let (told_at, valid_until, expiry_told) = (time(told_at), day(valid_until), day(expiry_told));
        let raised = at_alert_threshold(seats, assigned, alert_at_percent);
        let refused_due = refused_total > refused_told && told_at.is_none_or(|at| at <= now - REFUSALS_QUIET);
        let today = now.date_naive();
        let expiring = valid_until
            .map(|last| (last, (last - today).num_days()))
            .filter(|&(last, days)| (0..=EXPIRY_NOTICE_DAYS as i64).contains(&days) && expiry_told != Some(last));
        Alert {
            org: OrgId(org),
            code,
            seats,
            assigned,
            alert_at_percent,
            threshold_reached: raised && !was_raised,
            refused: refused_due.then_some((refused_total - refused_told, told_at)),
            expiring,
            raised,
            refused_told: if refused_due { refused_total } else { refused_told },
            refused_told_at: if refused_due { Some(now) } else { told_at },
            expiry_told: expiring.map(|(last, _)| last).or(expiry_told),
        }
    }

    /// The messages to write: each event with its `data`.
    pub(crate) fn messages(&self) -> Vec<(WebhookEvent, serde_json::Value)> {
        let mut messages = Vec::new();
        if self.threshold_reached {
            messages.push((
                WebhookEvent::SeatsThresholdReached,
                json!({"product": self.code, "seats": self.seats, "in_use": self.assigned, "alert_at_percent": self.alert_at_percent}),
            ));
        }
        if let Some((count, since)) = self.refused {
            messages.push((
                WebhookEvent::CheckinRefused,
                json!({"product": self.code, "count": count, "since": since.map(Timestamp::rfc3339)}),
            ));
        }
        if let Some((last, days)) = self.expiring {
            messages.push((
                WebhookEvent::SubscriptionExpiring,
                json!({"product": self.code, "valid_until": last.to_string(), "days_left": days}),
            ));
        }
        messages
    }
}

/// Attempts as both backends read them: id, message id, type, attempt, time
/// (as the backend stores it), status and error.
pub(crate) type AttemptRow<T> = (i64, String, String, i64, T, Option<i64>, Option<String>);

/// The attempt a page continues before (none: the newest first). A cursor
/// is opaque and any well-formed one names a position: one that is not an
/// attempt's names the end of the list.
pub(crate) fn attempts_before(page: &PageRequest) -> i64 {
    match page.after.as_deref() {
        None => i64::MAX,
        Some(after) => after.parse().unwrap_or(i64::MIN),
    }
}

pub(crate) fn attempts_page<T>(rows: Vec<AttemptRow<T>>, limit: i64, time: impl Fn(T) -> Timestamp) -> Page<DeliveryAttempt> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let mut last = None;
    let items = rows
        .into_iter()
        .take(limit)
        .map(|(id, message_id, event, attempt, at, status, error)| {
            last = Some(id);
            DeliveryAttempt { message_id, event, attempt, time: time(at), status, error }
        })
        .collect();
    Page { items, next: if more { last.map(|id| id.to_string()) } else { None } }
}

/// How long to wait before the next attempt at a message that failed
/// `attempts` times, and whether to give up on it instead: retried with
/// exponential backoff (1 s, 2 s, 4 s… at most an hour apart, with up to a
/// tenth more at random so that endpoints that fail together do not retry
/// together) until a day after the message was written.
pub fn retry_after(message_at: Timestamp, attempts: i64, now: Timestamp) -> Option<Timestamp> {
    const GIVE_UP_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);
    let base = 1000i64.saturating_mul(1i64 << attempts.clamp(0, 20)).min(3_600_000);
    let mut noise = [0u8; 2];
    let _ = getrandom::fill(&mut noise);
    let jitter = base / 10 * i64::from(u16::from_le_bytes(noise)) / i64::from(u16::MAX);
    let retry_at = now + chrono::TimeDelta::milliseconds(base + jitter);
    (retry_at < message_at + GIVE_UP_AFTER).then_some(retry_at)
}

/// An attempt that delivered (a 2xx answer).
pub fn delivered(at: Timestamp, status: i64) -> Attempted {
    Attempted { at, status: Some(status), error: None, retry_at: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_endpoints_unless_private_ones_are_allowed() {
        let public = Destinations::default();
        assert!(public.check_url("https://hooks.example.com/seatkeeper").is_ok());
        assert!(public.check_url("https://93.184.216.34:8443/x").is_ok());
        for refused in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://127.0.0.1/",
            "https://localhost:8443/",
            "https://api.localhost/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://intranet/",
            "not a url",
            "https:///path",
            "https://hooks.example.com/\0",
            " https://hooks.example.com/",
            "https://hooks.example.com/a\tb",
        ] {
            assert!(public.check_url(refused).is_err(), "{refused}");
        }
        assert!(public.check_url(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
        // The limit is on what was given; written out, a URL may grow.
        let quoted = public.check_url(&format!("https://example.com/{}", "\"".repeat(MAX_URL_LEN - 20))).unwrap();
        assert!(quoted.as_str().chars().count() > MAX_URL_LEN);
        assert!(public.check_parsed(quoted).is_ok());
        let private = Destinations { allow_private: true };
        assert!(private.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(private.check_url("https://localhost/hook").is_ok());
        assert!(private.check_url("ftp://127.0.0.1/").is_err());
    }

    #[test]
    fn public_addresses_are_the_internet() {
        for ip in ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::808:808"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.2", "10.0.0.1", "192.0.2.1", "198.18.0.1", "240.0.0.1", "255.255.255.255", "224.0.0.1", "::", "ff02::1", "2001:db8::1", "::127.0.0.1"] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn events_are_named_once_and_known() {
        let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_events(&names(&["seat.assigned", "device.deleted", "seat.assigned"])).unwrap(),
            [WebhookEvent::SeatAssigned, WebhookEvent::DeviceDeleted]
        );
        assert!(parse_events(&[]).is_err());
        assert!(parse_events(&names(&["seat.stolen"])).unwrap_err().to_string().contains("seats.threshold_reached"));
        for event in WebhookEvent::ALL {
            assert_eq!(serde_json::to_value(event).unwrap(), event.as_str());
            let others = WebhookEvent::ALL.iter().filter(|&&other| other != event);
            assert!(others.clone().all(|other| other.bit() & event.bit() == 0), "{event:?} has a bit of its own");
        }
        assert_eq!(WebhookEvent::bits(&WebhookEvent::ALL).count_ones() as usize, WebhookEvent::ALL.len());
    }

    #[test]
    fn a_secret_is_32_random_bytes_shown_as_whsec() {
        use base64::Engine;
        let (bytes, shown) = new_secret();
        assert_eq!(bytes.len(), 32);
        let encoded = shown.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap(), bytes);
        assert_ne!(new_secret().0, bytes);
    }

    #[test]
    fn retries_back_off_and_stop_after_a_day() {
        let written = crate::now();
        let first = retry_after(written, 0, written).unwrap();
        assert!((1000..=1100).contains(&(first - written).num_milliseconds()));
        let fifth = retry_after(written, 4, written).unwrap();
        assert!((16_000..=17_600).contains(&(fifth - written).num_milliseconds()));
        let late = retry_after(written, 40, written).unwrap();
        assert!((3_600_000..=3_960_000).contains(&(late - written).num_milliseconds()), "at most an hour apart");
        assert_eq!(retry_after(written, 3, written + chrono::TimeDelta::hours(24)), None);
    }

    fn row(assigned: i64, raised: bool, refused: (i64, i64), told_at: Option<Timestamp>, valid_until: Option<chrono::NaiveDate>)
    -> AlertRow<Option<Timestamp>, Option<chrono::NaiveDate>> {
        (1, "cad".into(), 10, assigned, Some(80), raised, refused.0, refused.1, told_at, valid_until, None)
    }

    fn alert(row: AlertRow<Option<Timestamp>, Option<chrono::NaiveDate>>, now: Timestamp) -> Alert {
        Alert::of(row, now, |at| at, |day| day)
    }

    #[test]
    fn each_alert_is_told_once() {
        let now = crate::now();
        let told = |alert: &Alert| alert.messages().into_iter().map(|(event, _)| event).collect::<Vec<_>>();

        let crossing = alert(row(8, false, (0, 0), None, None), now);
        assert_eq!(told(&crossing), [WebhookEvent::SeatsThresholdReached]);
        assert!(crossing.raised);
        assert_eq!(told(&alert(row(9, true, (0, 0), None, None), now)), []);
        let below = alert(row(7, true, (0, 0), None, None), now);
        assert!(told(&below).is_empty() && !below.raised, "dropping below re-arms it quietly");

        let refused = alert(row(0, false, (12, 5), None, None), now);
        assert_eq!(refused.messages()[0].1["count"], 7);
        assert_eq!((refused.refused_told, refused.refused_told_at), (12, Some(now)));
        let too_soon = alert(row(0, false, (12, 5), Some(now - chrono::TimeDelta::seconds(30)), None), now);
        assert!(told(&too_soon).is_empty() && too_soon.refused_told == 5);

        let today = now.date_naive();
        let ending = alert(row(0, false, (0, 0), None, Some(today + chrono::Days::new(12))), now);
        assert_eq!(ending.messages()[0].1["days_left"], 12);
        assert_eq!(ending.expiry_told, Some(today + chrono::Days::new(12)));
        assert!(told(&alert(row(0, false, (0, 0), None, Some(today + chrono::Days::new(15))), now)).is_empty());
    }
}
