//! The dashboard's sign-in cookie: signed with its issue time, valid for
//! [`LIFETIME`], revoked by signing out.
//!
//! The value is `<issued_ms>.<nonce>.<mac>`, where `mac` is an HMAC-SHA256, keyed by
//! the configured token, of the issue time and the nonce. Nodes keep no session table,
//! so any node with the same token accepts a cookie another node issued, until it
//! expires. Signing out revokes, on the node that served the sign-out, that cookie and
//! every cookie issued before it (a per-node "revoked before" mark, kept in memory);
//! the browser drops the cookie too. Other nodes honour a revoked cookie until its
//! lifetime ends; changing the token revokes every cookie on every node at once
//! (docs/SECURITY.md).

use super::auth::hmac_hex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// How long a sign-in lasts.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// How far in the future an issue time may be (clock skew between nodes).
const SKEW_MS: i64 = 60_000;

/// Issues and checks sign-in cookies for one token.
pub(crate) struct Sessions {
    key: Vec<u8>,
    /// Cookies issued at or before this instant (Unix ms) are revoked on this node.
    revoked_through: AtomicI64,
    /// The last issue time this node gave: each cookie gets a later one, so that revoking
    /// a cookie never revokes one issued after it in the same millisecond.
    last_issued: AtomicI64,
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Sessions {
    /// Sessions signed with a key derived from `token`.
    pub(crate) fn new(token: &str) -> Self {
        Self {
            key: hmac_hex(token.as_bytes(), "bildad-dashboard-session-v2").into_bytes(),
            revoked_through: AtomicI64::new(i64::MIN),
            last_issued: AtomicI64::new(i64::MIN),
        }
    }

    fn mac(&self, issued_ms: i64, nonce: &str) -> String {
        hmac_hex(&self.key, &format!("{issued_ms}.{nonce}"))
    }

    /// A new cookie value issued at `now_ms`, or just after the previous one this node
    /// issued if that is later (issue times on a node strictly increase).
    pub(crate) fn issue(&self, now_ms: i64) -> String {
        let next = |last: i64| now_ms.max(last.saturating_add(1));
        let last = self
            .last_issued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| Some(next(l)))
            .unwrap_or_else(|l| l);
        let issued = next(last);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        format!("{issued}.{nonce}.{}", self.mac(issued, &nonce))
    }

    /// The issue time of `value` when it is a genuine cookie, alive at `now_ms` and not
    /// revoked on this node.
    pub(crate) fn check(&self, value: &str, now_ms: i64) -> Option<i64> {
        let mut parts = value.splitn(3, '.');
        let (issued, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let issued_ms: i64 = issued.parse().ok()?;
        let genuine = bool::from(mac.as_bytes().ct_eq(self.mac(issued_ms, nonce).as_bytes()));
        let lifetime = i64::try_from(LIFETIME.as_millis()).unwrap_or(i64::MAX);
        let alive = issued_ms <= now_ms.saturating_add(SKEW_MS)
            && now_ms.saturating_sub(issued_ms) < lifetime;
        let revoked = issued_ms <= self.revoked_through.load(Ordering::Acquire);
        (genuine && alive && !revoked).then_some(issued_ms)
    }

    /// Revokes `value` (when genuine) and every cookie issued before it, on this node.
    pub(crate) fn revoke(&self, value: &str, now_ms: i64) {
        if let Some(issued) = self.check(value, now_ms) {
            self.revoked_through.fetch_max(issued, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_cookie_lives_twelve_hours() {
        let s = Sessions::new("s3cret");
        let t0 = 1_000 * HOUR;
        let c = s.issue(t0);
        assert!(!c.contains("s3cret"));
        assert_eq!(s.check(&c, t0), Some(t0));
        assert_eq!(s.check(&c, t0 + 12 * HOUR - 1), Some(t0));
        assert_eq!(s.check(&c, t0 + 12 * HOUR), None);
        // Issued in the future beyond the skew: refused.
        assert_eq!(s.check(&c, t0 - 2 * SKEW_MS), None);
    }

    #[test]
    fn a_cookie_cannot_be_forged_or_extended() {
        let s = Sessions::new("s3cret");
        let c = s.issue(5 * HOUR);
        let (_, rest) = c.split_once('.').unwrap();
        // Moving the issue time breaks the signature.
        assert_eq!(s.check(&format!("{}.{rest}", 6 * HOUR), 6 * HOUR), None);
        // Another token's cookie is not a session here.
        assert_eq!(Sessions::new("other").check(&c, 5 * HOUR), None);
        for bad in ["", "1", "1.2", "1.2.3", &"0".repeat(64)] {
            assert_eq!(s.check(bad, 5 * HOUR), None, "{bad}");
        }
    }

    #[test]
    fn signing_out_revokes_that_cookie_and_older_ones() {
        let s = Sessions::new("s3cret");
        let old = s.issue(HOUR);
        let mine = s.issue(2 * HOUR);
        let newer = s.issue(3 * HOUR);
        s.revoke(&mine, 3 * HOUR);
        assert_eq!(s.check(&mine, 3 * HOUR), None);
        assert_eq!(s.check(&old, 3 * HOUR), None);
        assert_eq!(s.check(&newer, 3 * HOUR), Some(3 * HOUR));
        // A forged value revokes nothing.
        s.revoke(&format!("{}.x.y", 4 * HOUR), 4 * HOUR);
        assert_eq!(s.check(&newer, 4 * HOUR), Some(3 * HOUR));
    }

    #[test]
    fn a_cookie_issued_in_the_same_millisecond_survives_an_older_ones_sign_out() {
        let s = Sessions::new("s3cret");
        let first = s.issue(HOUR);
        let second = s.issue(HOUR);
        s.revoke(&first, HOUR);
        assert_eq!(s.check(&first, HOUR), None);
        assert!(s.check(&second, HOUR).is_some());
    }
}
