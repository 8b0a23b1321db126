//! Freed memory kept for the next burst (Linux, glibc).
//!
//! While a tunnel carries bulk data, the multiplexer (yamux) allocates a
//! buffer for every frame it receives (up to 64 KiB) and frees it once the
//! bytes are forwarded. glibc gives the top of its heap back to the kernel
//! whenever more than 128 KiB of it is free (`M_TRIM_THRESHOLD`), so with a
//! few frames in flight the same memory goes back and forth: a profile of
//! the receiving app showed a fifth of its CPU in page faults, zeroing fresh
//! pages and unmapping them. [`keep_freed_memory`] raises that threshold to
//! [`TRIM_THRESHOLD`] (and fixes the size above which blocks get their own
//! mapping, which glibc would otherwise raise as it sees large frees), so a
//! burst's memory is reused; what is freed beyond the threshold still goes
//! back. Elsewhere (Windows, musl) it does nothing.

/// Free memory at the top of a heap that is kept rather than given back.
pub const TRIM_THRESHOLD: usize = 32 << 20;
/// Blocks at least this large are mapped on their own and unmapped when
/// freed (never kept).
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Keeps up to [`TRIM_THRESHOLD`] of freed memory per heap for reuse;
/// returns whether the allocator took the settings.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() -> bool {
    // SAFETY: mallopt only changes the allocator's tuning parameters.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
    }
}

/// Keeps freed memory for reuse where the allocator can be told to (glibc);
/// here it cannot.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// Minor page faults of the calling thread so far.
    fn faults() -> i64 {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct passed.
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
        u.ru_minflt
    }

    /// Page faults while 4 MiB of frame-sized buffers are filled and freed
    /// 20 times, as the multiplexer does during a transfer.
    fn faults_over_bursts() -> i64 {
        let before = faults();
        for round in 0..20u8 {
            let frames: Vec<Vec<u8>> = (0..64).map(|_| vec![round; 64 * 1024]).collect();
            assert!(frames.iter().all(|f| f[4096] == round));
        }
        faults() - before
    }

    #[test]
    fn a_bursts_memory_is_reused_not_faulted_in_again() {
        // A thread of its own, so its heap sees only these buffers.
        std::thread::spawn(|| {
            assert!(super::keep_freed_memory());
            faults_over_bursts();
            let n = faults_over_bursts();
            // Without the setting every burst faults its 1,024 pages in again.
            assert!(n < 200, "{n} page faults over 20 bursts");
        })
        .join()
        .unwrap();
    }
}
