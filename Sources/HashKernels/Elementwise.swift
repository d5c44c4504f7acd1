/// Elementwise float32 kernels used by the layers: ReLU, masks, bias adds and sums.
///
/// Written with `SIMD16<Float>` over unaligned loads/stores, avoiding two code-generation pitfalls
/// of Swift's SIMD types: products are accumulated as `acc += a * b` (never `addingProduct`, which
/// becomes a per-lane `fmaf` library call on baseline x86-64), and clamping is done with
/// `replace(with:where:)` (never `pointwiseMax`/`clamped`, which are scalarised).
/// Every function takes raw pointers plus a count; inputs and outputs may alias exactly
/// (same pointer) but must not partially overlap.
public enum Elementwise {
    public typealias V = SIMD16<Float>

    /// Runs `body(range)` over `0..<n` cut into parts of whole 16-float blocks, one per thread of
    /// `ParallelFor.split`; below `minParallel` elements (128 Ki: ~15 µs of work) it runs inline
    /// (a thread hand-off costs about as much).
    @inlinable
    public static func parallel(count n: Int, minParallel: Int = 1 << 17, _ body: (Range<Int>) -> Void) {
        if n < minParallel { body(0..<n); return }
        let blocks = (n + 15) / 16
        ParallelFor.split(count: blocks) { _, r in
            body((r.lowerBound * 16)..<min(n, r.upperBound * 16))
        }
    }

    @inlinable @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inlinable @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// dst[i] = src[i] for i < n, inlined (16/4-lane moves, scalar tail): faster than a `memcpy`
    /// call for the short rows (tens of floats) that im2col copies by the hundred thousand.
    @inlinable @inline(__always)
    public static func copy(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 16 <= n { store(load(src + i), dst + i); i += 16 }
        while i + 4 <= n {
            UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD4<Float>.self),
                                                        as: SIMD4<Float>.self)
            i += 4
        }
        while i < n { dst[i] = src[i]; i += 1 }
    }

    /// dst[i] = 0 for i < n, inlined (see `copy`).
    @inlinable @inline(__always)
    public static func fillZero(_ dst: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        let z = V(repeating: 0)
        while i + 16 <= n { store(z, dst + i); i += 16 }
        while i < n { dst[i] = 0; i += 1 }
    }

    /// y[i] += x[i].
    @inlinable
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 16 <= n { store(load(y + i) + load(x + i), y + i); i += 16 }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// y[i] = max(x[i], 0), NaN propagated (as `torch.relu`).
    @inlinable
    public static func relu(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        let zero = V(repeating: 0)
        while i + 16 <= n {
            var v = load(x + i)
            v.replace(with: zero, where: v .< zero)
            store(v, y + i)
            i += 16
        }
        while i < n { let v = x[i]; y[i] = v < 0 ? 0 : v; i += 1 }
    }

    /// dx[i] = y[i] ≤ 0 ? 0 : dy[i], with y the ReLU *output* (as PyTorch's `threshold_backward`;
    /// the subgradient at 0 is 0).
    @inlinable
    public static func reluBackward(output y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                    into dx: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        let zero = V(repeating: 0)
        while i + 16 <= n {
            var d = load(dy + i)
            d.replace(with: zero, where: load(y + i) .<= zero)
            store(d, dx + i)
            i += 16
        }
        while i < n { dx[i] = y[i] <= 0 ? 0 : dy[i]; i += 1 }
    }

    /// z[i] = x[i] · m[i].
    @inlinable
    public static func multiply(_ x: UnsafePointer<Float>, _ m: UnsafePointer<Float>,
                                into z: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 16 <= n { store(load(x + i) * load(m + i), z + i); i += 16 }
        while i < n { z[i] = x[i] * m[i]; i += 1 }
    }

    /// y[i] = x[i] + c.
    @inlinable
    public static func addScalar(_ x: UnsafePointer<Float>, _ c: Float, into y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        let cv = V(repeating: c)
        while i + 16 <= n { store(load(x + i) + cv, y + i); i += 16 }
        while i < n { y[i] = x[i] + c; i += 1 }
    }

    /// y[i] = max(x[i] + c, 0), NaN propagated (bias then ReLU in one pass).
    @inlinable
    public static func addScalarReLU(_ x: UnsafePointer<Float>, _ c: Float, into y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        let cv = V(repeating: c), zero = V(repeating: 0)
        while i + 16 <= n {
            var v = load(x + i) + cv
            v.replace(with: zero, where: v .< zero)
            store(v, y + i)
            i += 16
        }
        while i < n { let v = x[i] + c; y[i] = v < 0 ? 0 : v; i += 1 }
    }

    /// out[j] += Σ_r x[r, j] for a row-major (rows, cols) matrix x (bias gradient of a dense layer),
    /// rows added in order.
    @inlinable
    public static func accumulateColumnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int,
                                            into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { add(x + r * cols, into: out, count: cols) }
    }

    /// Σ_i x[i] (16 float lanes, then a horizontal sum).
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var acc0 = V(repeating: 0), acc1 = V(repeating: 0)
        var i = 0
        while i + 32 <= n { acc0 += load(x + i); acc1 += load(x + i + 16); i += 32 }
        if i + 16 <= n { acc0 += load(x + i); i += 16 }
        var s = (acc0 + acc1).sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }
}
