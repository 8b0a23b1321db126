//! The runtime the apps run their tunnels on: one worker thread, beside the
//! blocking pool (password stretching, system queries) and the built-in
//! desktop's own thread.
//!
//! With two workers, each step of a tunnel (a record read, a new stream, a
//! frame handed to the writer task) woke the idle worker to look for work,
//! which mostly found none: on the 2-core bench machine, per new connection,
//! 2.0 futex wakes and 3.4 context switches more in thinclient, 1.4 and 2.4
//! more in thinsvr (BENCHMARKS.md, runs 34-37). One worker runs the same
//! chain of tasks with no hand-over between threads. It cut the set-up time
//! of a new connection by about 9 % at the median and lost no throughput
//! there (one stream 1.2x, four streams 1.0x of two workers): one core seals
//! and opens several Gbit/s, far more than a desktop session needs.
//!
//! It stays a multi-thread runtime: the login finishes the password
//! stretching in `block_in_place`, which a current-thread runtime refuses.

/// Builds the tunnel runtime; `name` names its threads.
pub fn build(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name(name).enable_all().build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_worker_that_allows_blocking_sections() {
        let rt = super::build("thin-test-rt").unwrap();
        assert_eq!(rt.metrics().num_workers(), 1);
        // The login's password stretching runs like this (e2e::client_login).
        let n = rt.block_on(async { tokio::spawn(async { tokio::task::block_in_place(|| 7) }).await.unwrap() });
        assert_eq!(n, 7);
    }
}
