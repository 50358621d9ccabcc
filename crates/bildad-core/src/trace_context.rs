//! The W3C trace context an entry may carry (`NewEntry::trace_context`): the
//! `traceparent` of the request that enqueued it, so that its runs' spans link to that
//! request (docs/OBSERVABILITY.md). The one parser of that text: the store's input check,
//! the HTTP header and the runtime's span all go through [`Traceparent::parse`].

/// The longest trace context kept, in bytes (a version-00 `traceparent` is 55).
pub const MAX_TRACE_CONTEXT_BYTES: usize = 256;

/// A parsed W3C `traceparent`: `<version>-<trace id>-<parent id>-<flags>`, lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent<'a> {
    /// 32 hex digits, not all zero.
    pub trace_id: &'a str,
    /// 16 hex digits, not all zero.
    pub span_id: &'a str,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl<'a> Traceparent<'a> {
    /// The trace context `text` names, or `None` when it is not a valid `traceparent`
    /// (version `ff`, a version-00 value with more fields, a wrong length or digit, an
    /// all-zero id, or longer than [`MAX_TRACE_CONTEXT_BYTES`]).
    pub fn parse(text: &'a str) -> Option<Self> {
        if text.len() > MAX_TRACE_CONTEXT_BYTES {
            return None;
        }
        let mut parts = text.split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        let valid = hex(version, 2)
            && version != "ff"
            && !(version == "00" && parts.next().is_some())
            && hex(trace_id, 32)
            && !zero(trace_id)
            && hex(span_id, 16)
            && !zero(span_id)
            && hex(flags, 2);
        valid.then(|| Self {
            trace_id,
            span_id,
            flags: u8::from_str_radix(flags, 16).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_w3c_example_parses_and_bad_ones_do_not() {
        let t = Traceparent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id, "00f067aa0ba902b7");
        assert_eq!(t.flags, 1);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(Traceparent::parse(bad), None, "{bad:?}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(
            Traceparent::parse(future).is_some(),
            "a later version may add fields"
        );
    }
}
