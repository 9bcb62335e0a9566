//! The shapes docs/contract.md allows for what users and devices type: serials,
//! product codes, names and seat counts. The store checks them itself so that
//! no caller can put a malformed value in the database.

use crate::StoreError;

pub const SERIAL_MAX_CHARS: usize = 128;
pub const CODE_MAX_CHARS: usize = 64;
pub const NAME_MAX_CHARS: usize = 200;

/// A device serial: 1 to 128 characters, none of them a control character.
/// Serials are compared exactly: no trimming, no case folding.
pub fn serial(serial: &str) -> Result<(), StoreError> {
    let count = serial.chars().count();
    if count == 0 {
        return Err(StoreError::invalid("serial must not be empty"));
    }
    if count > SERIAL_MAX_CHARS {
        return Err(StoreError::invalid(format!("serial must be at most {SERIAL_MAX_CHARS} characters")));
    }
    if serial.chars().any(char::is_control) {
        return Err(StoreError::invalid("serial must not contain control characters"));
    }
    Ok(())
}

/// Whether `code` could name a product: `[a-z0-9][a-z0-9-_.]{0,63}`.
pub fn is_product_code(code: &str) -> bool {
    let mut bytes = code.bytes();
    let Some(first) = bytes.next() else { return false };
    code.len() <= CODE_MAX_CHARS
        && matches!(first, b'a'..=b'z' | b'0'..=b'9')
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
}

/// Text a caller looks something up by (a search, a filter, a product code
/// in a path): it may match nothing, but it must not hold control
/// characters, which no stored value has and PostgreSQL refuses outright
/// (NUL) before it could say so.
pub fn lookup(what: &str, text: &str) -> Result<(), StoreError> {
    match text.chars().any(char::is_control) {
        true => Err(StoreError::invalid(format!("{what} must not contain control characters"))),
        false => Ok(()),
    }
}

/// Where a page of devices continues: after a serial, so serial-shaped.
pub fn page(page: &crate::PageRequest) -> Result<(), StoreError> {
    match &page.after {
        Some(after) => serial(after).map_err(|_| StoreError::invalid("invalid cursor: pass back a next_cursor unchanged")),
        None => Ok(()),
    }
}

pub fn product_code(code: &str) -> Result<(), StoreError> {
    if is_product_code(code) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "product code must be 1-64 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit",
        ))
    }
}

/// A display name (of a product or an organization): 1 to 200 characters,
/// not blank, no control characters.
pub fn name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::invalid(format!("{what} must not be empty")));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(StoreError::invalid(format!("{what} must be at most {NAME_MAX_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::invalid(format!("{what} must not contain control characters")));
    }
    Ok(())
}

pub fn seats(seats: i64) -> Result<(), StoreError> {
    if (0..=i64::from(i32::MAX)).contains(&seats) {
        Ok(())
    } else {
        Err(StoreError::invalid("seats must be a whole number from 0 to 2147483647"))
    }
}

pub const LICENSE_DAYS_MAX: i64 = 365;

/// How long a signed license stays valid: 1 to 365 days.
pub fn license_days(days: i64) -> Result<(), StoreError> {
    if (1..=LICENSE_DAYS_MAX).contains(&days) {
        Ok(())
    } else {
        Err(StoreError::invalid(format!("license_days must be a whole number from 1 to {LICENSE_DAYS_MAX}")))
    }
}

pub const RECLAIM_DAYS_MAX: i64 = 3650;

/// After how many days unseen a device's seats are reclaimed: 1 to 3650.
pub fn reclaim_after_days(days: i64) -> Result<(), StoreError> {
    if (1..=RECLAIM_DAYS_MAX).contains(&days) {
        Ok(())
    } else {
        Err(StoreError::invalid(format!("reclaim_after_days must be a whole number from 1 to {RECLAIM_DAYS_MAX}, or null for never")))
    }
}

pub const LEASE_MINUTES: std::ops::RangeInclusive<i64> = 5..=1440;

/// How long a floating seat's lease lasts after a check-in: 5 to 1440 minutes.
pub fn lease_minutes(minutes: i64) -> Result<(), StoreError> {
    if LEASE_MINUTES.contains(&minutes) {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "lease_minutes must be a whole number from {} to {}",
            LEASE_MINUTES.start(),
            LEASE_MINUTES.end()
        )))
    }
}

/// A subscription's last day: a date of the years 2000 to 9999, which both
/// databases store alike.
pub fn term(last_day: chrono::NaiveDate) -> Result<(), StoreError> {
    use chrono::Datelike;
    if (2000..=9999).contains(&last_day.year()) {
        Ok(())
    } else {
        Err(StoreError::invalid("a subscription's last day must be a date from 2000-01-01 to 9999-12-31"))
    }
}

/// The share of seats in use that raises an alert: 1 to 100 percent.
pub fn alert_at_percent(percent: i64) -> Result<(), StoreError> {
    if (1..=100).contains(&percent) {
        Ok(())
    } else {
        Err(StoreError::invalid("alert_at_percent must be a whole number from 1 to 100, or null for no alert"))
    }
}

/// A LIKE pattern matching serials that contain `query`, with LIKE's own
/// wildcards escaped by `\`.
pub(crate) fn contains_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_follow_the_product_rules() {
        assert!(serial("A").is_ok());
        assert!(serial(&"x".repeat(128)).is_ok());
        assert!(serial(&"é".repeat(128)).is_ok(), "the limit counts characters, not bytes");
        assert!(serial("  spaced serial / with ünïcode 🔑 ").is_ok());
        assert!(serial("").is_err());
        assert!(serial(&"x".repeat(129)).is_err());
        assert!(serial("tab\there").is_err());
        assert!(serial("nul\0").is_err());
        assert!(serial("del\u{7f}").is_err());
        assert!(serial("c1\u{85}").is_err());
    }

    #[test]
    fn product_codes_follow_the_product_rules() {
        for ok in ["a", "0", "pro-2024_x.y", &"a".repeat(64)] {
            assert!(is_product_code(ok), "{ok:?}");
        }
        for bad in ["", "-a", ".a", "_a", "A", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(!is_product_code(bad), "{bad:?}");
        }
    }

    #[test]
    fn lookups_refuse_control_characters_only() {
        assert!(lookup("q", "any text: %_ \\ \" ' é").is_ok());
        assert!(lookup("q", "").is_ok());
        for bad in ["abc\0", "\0", "a\nb", "\u{85}"] {
            assert!(lookup("q", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn like_wildcards_in_a_search_are_literal() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
