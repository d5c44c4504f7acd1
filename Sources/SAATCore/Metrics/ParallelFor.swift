import Dispatch
import Glibc

/// A small parallel-for over index chunks for the metric loops (pure integer/popcount work:
/// never run it around BLAS calls, whose own thread pool would oversubscribe the cores).
///
/// Work is cut into chunks whose boundaries depend only on `count` and `chunk`, never on the
/// thread count, so callers that reduce per-chunk partial results in chunk order get bitwise
/// identical answers for any `threads`. `threads` workers (one `DispatchQueue.concurrentPerform`
/// iteration each) pull chunk numbers from a mutex-protected counter, so a core that is busy with
/// another process does not hold up the whole call.
///
/// `import Dispatch` links statically into the `-static-stdlib` extension (the toolchain ships
/// `libdispatch.a`; `ldd` of `_core*.so` shows no libdispatch or libswift*).
public enum ParallelFor {
    /// Number of online CPUs (at least 1).
    public static var onlineCPUs: Int {
        let n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return n > 0 ? Int(n) : 1
    }

    /// Worker count for a request: `threads` ≤ 0 means all online CPUs; never more than `chunks`.
    public static func workers(_ threads: Int, chunks: Int) -> Int {
        let t = threads <= 0 ? onlineCPUs : threads
        return max(1, min(t, chunks))
    }

    /// Calls `body(c, range)` for every chunk c of `0..<count` (range = c·chunk ..< min(count, (c+1)·chunk)),
    /// from `workers(threads, ·)` threads. `body` must only write memory owned by chunk c.
    public static func run(count: Int, chunk: Int, threads: Int, _ body: (Int, Range<Int>) -> Void) {
        precondition(chunk >= 1)
        if count <= 0 { return }
        let chunks = (count + chunk - 1) / chunk
        let nw = workers(threads, chunks: chunks)
        if nw == 1 {
            for c in 0..<chunks { body(c, (c * chunk)..<min(count, (c + 1) * chunk)) }
            return
        }
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        let next = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        next.initialize(to: 0)
        defer {
            pthread_mutex_destroy(lock)
            lock.deallocate()
            next.deallocate()
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: nw) { _ in
                while true {
                    pthread_mutex_lock(lock)
                    let c = next.pointee
                    next.pointee = c + 1
                    pthread_mutex_unlock(lock)
                    if c >= chunks { break }
                    body(c, (c * chunk)..<min(count, (c + 1) * chunk))
                }
            }
        }
    }
}
