import Dispatch
import Glibc

/// Parallel loops of the core: `run` (chunked, for the metric loops' integer/popcount work) and
/// `split` (contiguous parts, for the network kernels: conv, pool, ReLU, linear).
///
/// Threads: saat never runs OpenBLAS's own thread pool and a parallel loop of its own at the same
/// time (that oversubscribes the cores: measured). `split` runs its body with OpenBLAS pinned to
/// one thread (`BLAS.singleThreaded`), so every part's sgemm runs in the part's own thread and
/// the cores are shared out by saat alone; `run` must not call BLAS.
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

    /// Worker threads of the network kernels (`split`): all online CPUs unless set. Set through
    /// `saat.kernels.set_threads` (Python) or `setComputeThreads`. Forward passes and input
    /// gradients are bitwise identical for any value; parameter gradients of convolutions are
    /// reduced over `computeThreads` parts, so they are bitwise reproducible for a fixed value.
    public static var computeThreads: Int {
        let t = _computeThreads.pointee
        return t > 0 ? t : onlineCPUs
    }

    /// Sets `computeThreads` (≤ 0: all online CPUs).
    public static func setComputeThreads(_ n: Int) { _computeThreads.pointee = max(0, n) }

    nonisolated(unsafe) private static let _computeThreads: UnsafeMutablePointer<Int> = {
        let p = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    /// Cuts `0..<count` into `parts` contiguous ranges of near-equal size (the first `count % parts`
    /// one longer), depending only on `count` and `parts`.
    @inlinable
    public static func partRange(_ part: Int, of parts: Int, count: Int) -> Range<Int> {
        let q = count / parts, r = count % parts
        let lo = part * q + min(part, r)
        return lo..<(lo + q + (part < r ? 1 : 0))
    }

    /// Calls `body(part, range)` for `parts` = min(`threads`, `count`) contiguous near-equal
    /// ranges of `0..<count` (see `partRange`), one thread each (the caller runs one), with
    /// OpenBLAS pinned to one thread for the duration. `body` must only write memory owned by its
    /// part. `threads` ≤ 0 means `computeThreads`.
    public static func split(count: Int, threads: Int = 0, _ body: (Int, Range<Int>) -> Void) {
        if count <= 0 { return }
        let parts = parts(count: count, threads: threads)
        BLAS.singleThreaded {
            if parts == 1 { body(0, 0..<count); return }
            withoutActuallyEscaping(body) { body in
                DispatchQueue.concurrentPerform(iterations: parts) { p in
                    body(p, partRange(p, of: parts, count: count))
                }
            }
        }
    }

    /// Calls `body(range)` once for every fixed block of `0..<count`: block b is
    /// b·`block` ..< min(`count`, (b + 1)·`block`). The blocks depend only on `count` and `block`,
    /// never on the thread count; they are shared out over `split`'s parts (OpenBLAS pinned to one
    /// thread). A kernel that computes each output block with one call whose shape depends only on
    /// the block (e.g. one sgemm per block of output rows) therefore gives bitwise the same result
    /// for any thread count: OpenBLAS picks its micro-kernels, and so the summation order inside
    /// an output value, from the call's shape, and a split by thread count would change those
    /// shapes (measured: a 3-way split of a 4096-column sgemm changed 6 % of the values in their
    /// last bits on an AVX2 machine, none on an AVX-512 one).
    public static func blocks(count: Int, block: Int, threads: Int = 0, _ body: (Range<Int>) -> Void) {
        precondition(block >= 1)
        if count <= 0 { return }
        let nb = (count + block - 1) / block
        split(count: nb, threads: threads) { _, r in
            for b in r { body((b * block)..<min(count, (b + 1) * block)) }
        }
    }

    /// Number of parts `split(count:threads:)` uses.
    public static func parts(count: Int, threads: Int = 0) -> Int {
        max(1, min(threads > 0 ? threads : computeThreads, max(count, 1)))
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
