//! File descriptors: the process's limit on open files (RLIMIT_NOFILE), raised to its hard
//! limit at start, and how many are open, so work that takes sockets (webhook attempts) stops
//! short of the limit and leaves the database and the API theirs.

/// The soft and hard limits on open files; `None` where unknown or unlimited.
fn limits() -> Option<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
    (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(r)
}

/// Raises the soft limit on open files to the hard limit (a server holds a socket per
/// connection and per webhook attempt; the usual soft default of 1024 is low). Answers the
/// limit before and after, or `None` where it is unknown.
pub fn raise_limit() -> Option<(libc::rlim_t, libc::rlim_t)> {
    let r = limits()?;
    let before = r.rlim_cur;
    if r.rlim_cur >= r.rlim_max {
        return Some((before, before));
    }
    let want = libc::rlimit {
        rlim_cur: r.rlim_max,
        rlim_max: r.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0;
    // Some systems refuse an unlimited hard limit; the old one stays then.
    Some((before, if ok { r.rlim_max } else { before }))
}

/// Descriptors open now (Linux: the entries of /proc/self/fd, less the one reading it).
fn open_now() -> Option<libc::rlim_t> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as libc::rlim_t;
    Some(n.saturating_sub(1))
}

/// How many more descriptors may be opened while `reserve` stay free below the soft limit;
/// `None` where the limit or the count is unknown (nothing to hold back by).
pub fn room(reserve: usize) -> Option<usize> {
    let limit = limits()?.rlim_cur;
    let open = open_now()?;
    Some(
        limit
            .saturating_sub(open)
            .saturating_sub(reserve as libc::rlim_t) as usize,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn room_is_what_the_limit_leaves_above_the_reserve() {
        let Some(all) = super::room(0) else {
            return; // not Linux: nothing to count
        };
        assert!(all > 0);
        // (The limit itself may be raised meanwhile by the test below.)
        assert_eq!(super::room(usize::MAX), Some(0));
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let Some((before, after)) = super::raise_limit() else {
            return; // unknown or unlimited here
        };
        assert!(after >= before);
        let now = super::limits().unwrap();
        assert_eq!(now.rlim_cur, after);
        // Raising again changes nothing.
        assert_eq!(super::raise_limit(), Some((after, after)));
    }
}
