import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Thin, documented wrappers over OpenBLAS (Debian's pthreads build).
///
/// All matrices are row-major. OpenBLAS keeps its own thread pool: a parallel loop of saat's own
/// around these calls runs them inside `singleThreaded` (as `ParallelFor.split` does), never with
/// both thread pools active at once (that oversubscribes the cores).
public enum BLAS {
    /// C ← α·op(A)·op(B) + β·C with op(X) = Xᵀ when `transX`.
    /// A is (m, k) after op, B is (k, n) after op, C is (m, n); `lda/ldb/ldc` are row strides.
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0,
                             c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS semantics: C ← β·C.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Runs `body` with OpenBLAS pinned to one thread, so that sgemm calls made from several of
    /// saat's own threads at once (`ParallelFor.split`) run in their callers' threads instead of
    /// queueing on OpenBLAS's pool. Nestable and safe to call from several threads: the first
    /// entrant saves the thread count and sets 1, the last one out restores it.
    public static func singleThreaded<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(guardLock)
        if guardState[0] == 0 {
            guardState[1] = Int(openblas_get_num_threads())
            if guardState[1] != 1 { openblas_set_num_threads(1) }
        }
        guardState[0] += 1
        pthread_mutex_unlock(guardLock)
        defer {
            pthread_mutex_lock(guardLock)
            guardState[0] -= 1
            if guardState[0] == 0 && guardState[1] != 1 { openblas_set_num_threads(Int32(guardState[1])) }
            pthread_mutex_unlock(guardLock)
        }
        return try body()
    }

    // [depth, saved thread count] of `singleThreaded`, under `guardLock`.
    nonisolated(unsafe) static let guardState: UnsafeMutablePointer<Int> = {
        let p = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        p.initialize(repeating: 0, count: 2)
        return p
    }()
    nonisolated(unsafe) static let guardLock: UnsafeMutablePointer<pthread_mutex_t> = {
        let p = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(p, nil)
        return p
    }()

    /// Number of threads OpenBLAS uses (outside `singleThreaded`).
    public static var threads: Int {
        pthread_mutex_lock(guardLock)
        defer { pthread_mutex_unlock(guardLock) }
        return guardState[0] > 0 ? guardState[1] : Int(openblas_get_num_threads())
    }

    /// Sets the OpenBLAS thread count (1...number of cores) used outside `singleThreaded`.
    public static func setThreads(_ n: Int) {
        pthread_mutex_lock(guardLock)
        defer { pthread_mutex_unlock(guardLock) }
        if guardState[0] > 0 { guardState[1] = max(1, n) } else { openblas_set_num_threads(Int32(max(1, n))) }
    }

    /// OpenBLAS build configuration string, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64".
    public static var config: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p)
    }

    /// Name of the CPU kernel set OpenBLAS picked at run time (e.g. "Cooperlake", "Haswell").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}

/// The CPU the Swift kernels were compiled for (`SAAT_TARGET_CPU` at build time).
public enum BuildInfo {
    public static var targetCPU: String {
        #if SAAT_CPU_haswell
        return "haswell"
        #elseif SAAT_CPU_x86_64
        return "x86-64"
        #elseif SAAT_CPU_znver4
        return "znver4"
        #elseif SAAT_CPU_znver3
        return "znver3"
        #elseif SAAT_CPU_skylake_avx512
        return "skylake-avx512"
        #elseif SAAT_CPU_native
        return "native"
        #else
        return "other"
        #endif
    }
}
