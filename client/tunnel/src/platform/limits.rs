//! The process's open-file limit. On Linux the soft limit is often 1,024,
//! below what a tunnel carrying [`crate::mux::MAX_CONNECTIONS`] local
//! connections needs, while the hard limit allows far more: the apps raise
//! the soft limit to the hard one at start, as Go's runtime and most servers
//! do. Windows has no such limit.

/// Raises the soft limit on open files to the hard limit (Unix); returns the
/// limit now in force, or `None` where there is none to raise.
#[cfg(unix)]
pub fn raise_open_files() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
    Some(lim.rlim_cur as u64)
}

/// Raises the soft limit on open files to the hard limit (Unix); returns the
/// limit now in force, or `None` where there is none to raise.
#[cfg(not(unix))]
pub fn raise_open_files() -> Option<u64> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let got = super::raise_open_files().expect("a limit on Unix");
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: reads the limit into the struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        #[allow(clippy::unnecessary_cast)]
        let cur = lim.rlim_cur as u64;
        assert_eq!(got, cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
