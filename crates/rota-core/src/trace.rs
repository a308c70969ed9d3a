//! W3C trace context (<https://www.w3.org/TR/trace-context/>) kept with a task: what a valid
//! `traceparent` and `tracestate` look like. A task carries them so the spans of its life, its
//! worker's and its deliveries' join the trace of the request that enqueued it
//! (docs/telemetry.md).

/// The longest `tracestate` kept (the W3C limit a vendor must propagate).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// Why `traceparent` is not a W3C trace parent (`00-<32 hex>-<16 hex>-<2 hex>`, lower case,
/// neither id all zeros; a later version may add fields after a `-`).
pub fn check_traceparent(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b[r].iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let zero = |r: std::ops::Range<usize>| b[r].iter().all(|&c| c == b'0');
    let shaped = b.len() >= 55
        && b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(0..2)
        && hex(3..35)
        && hex(36..52)
        && hex(53..55);
    if !shaped {
        return Err("is not a W3C traceparent (00-<32 hex digits>-<16 hex digits>-<2 hex digits>, lower case)".into());
    }
    match &s[0..2] {
        "ff" => return Err("has version ff, which W3C trace context forbids".into()),
        "00" if b.len() != 55 => {
            return Err("has fields after its flags, which version 00 does not allow".into())
        }
        _ if b.len() > 55 && b[55] != b'-' => {
            return Err("is not a W3C traceparent: its flags run on past two digits".into())
        }
        _ => {}
    }
    if zero(3..35) {
        return Err("has an all-zero trace id".into());
    }
    if zero(36..52) {
        return Err("has an all-zero parent id".into());
    }
    Ok(())
}

/// Why `tracestate` is not one to keep: at most [`MAX_TRACESTATE_LEN`] bytes of printable
/// ASCII (its list members are the vendors' to read; Rota only carries them).
pub fn check_tracestate(s: &str) -> Result<(), String> {
    if s.len() > MAX_TRACESTATE_LEN {
        return Err(format!(
            "is {} bytes; the limit is {MAX_TRACESTATE_LEN}",
            s.len()
        ));
    }
    if !s.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return Err("may hold only printable ASCII".into());
    }
    Ok(())
}

/// The rules of a task's trace context, `at` naming it in messages (`task`, `tasks[3]`): a
/// valid `traceparent`, and a `tracestate` only beside one.
pub fn check(at: &str, traceparent: Option<&str>, tracestate: Option<&str>) -> Result<(), String> {
    if let Some(p) = traceparent {
        check_traceparent(p).map_err(|e| format!("{at}.traceparent {e}"))?;
    }
    if let Some(s) = tracestate {
        if traceparent.is_none() {
            return Err(format!(
                "{at}.tracestate needs a traceparent: it extends the trace the traceparent names"
            ));
        }
        check_tracestate(s).map_err(|e| format!("{at}.tracestate {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn accepts_the_w3c_example_and_later_versions() {
        assert_eq!(check_traceparent(GOOD), Ok(()));
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert_eq!(check_traceparent(later), Ok(()));
    }

    #[test]
    fn refuses_what_w3c_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-012",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(check_traceparent(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn tracestate_needs_a_parent_and_a_bound() {
        assert!(check("task", None, Some("a=b")).is_err());
        assert_eq!(
            check("task", Some(GOOD), Some("rojo=00f067aa0ba902b7")),
            Ok(())
        );
        let long = "a=".to_owned() + &"b".repeat(MAX_TRACESTATE_LEN);
        let e = check("tasks[2]", Some(GOOD), Some(&long)).unwrap_err();
        assert!(e.starts_with("tasks[2].tracestate is 514 bytes"), "{e}");
        assert!(check("task", Some(GOOD), Some("a=\u{7f}")).is_err());
    }
}
