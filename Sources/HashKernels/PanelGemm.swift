/// acc + a·b, the one multiply-add of saat's own register kernels (`PanelGemm`, `DirectConv`): a
/// fused multiply-add (one rounding) where the kernels are built for a CPU with FMA; a product
/// then a sum (two roundings) on baseline x86-64, where `addingProduct` would become a per-lane
/// library call. Either way the float32 bound γ_{k+1}·Σ|a·b| of a k-term chain holds. The scalar
/// form has the same rounding, for reference loops that must reproduce a kernel's bits.
public enum MultiplyAdd {
    public typealias V = SIMD8<Float>
}

#if SAAT_CPU_haswell || SAAT_CPU_znver3 || SAAT_CPU_znver4 || SAAT_CPU_skylake_avx512 || SAAT_CPU_native
extension MultiplyAdd {
    @inline(__always) public static func madd(_ acc: V, _ a: V, _ b: V) -> V { acc.addingProduct(a, b) }
    @inline(__always) public static func madd(_ acc: Float, _ a: Float, _ b: Float) -> Float { acc.addingProduct(a, b) }
}
#else
extension MultiplyAdd {
    @inline(__always) public static func madd(_ acc: V, _ a: V, _ b: V) -> V { acc + a * b }
    @inline(__always) public static func madd(_ acc: Float, _ a: Float, _ b: Float) -> Float { acc + a * b }
}
#endif

/// C (m × n) = A (m × k) · B (k × n) with both operands already in register-panel layout, for
/// the Winograd convolutions' products (`Winograd`), whose transforms write their outputs
/// straight into these layouts: no packing copy per call as an sgemm would make.
///
/// Layouts (`aIndex`, `bIndex`):
/// - A in panels of `panelRows` = 6 rows: row i, column kk at ((i / 6)·k + kk)·6 + i mod 6; rows
///   past m in the last panel are zero (their results are computed but never stored);
/// - B in panels of `panelCols` = 16 columns: row kk, column j at ((j / 16)·k + kk)·16 + j mod 16;
///   n is a multiple of 8 (the last panel may hold only 8 columns; its other 8 lanes are not read).
///
/// Summation order: every value is one chain c ← madd(c, a[i, kk], b[kk, j]) over kk = 0 … k − 1
/// from c = 0 (`MultiplyAdd.madd`), whatever m, n, the value's row or column, or the register
/// tile that computes it. A column's results therefore do not depend on the other columns of the
/// call: images that share a call get the same bits as alone (unlike OpenBLAS's sgemm, whose
/// micro-kernels sum a value in an order that depends on its column inside a tile, see
/// `RowProducts`). Rounding: |computed − exact| ≤ γ_{k+1}·Σ_kk |a·b| (γ_k when fused).
///
/// Speed: 6 × 16 register tiles (12 accumulators, two B vectors and one broadcast: the 16 AVX2
/// registers); A's panels in blocks of about `aBlockFloats` stay in L2 while B's panels pass.
/// Measured on one Zen 4 core (fused): 92–100 GFLOP/s on Winograd-shaped products (m 256–384,
/// k 192–256, n 48–192), against OpenBLAS sgemm's 55–81 GFLOP/s on the same unpacked operands.
public enum PanelGemm {
    /// Rows of an A panel and columns of a B panel: the 6 × 16 register tile of `tile16`.
    public static let panelRows = 6
    public static let panelCols = 16
    typealias V = SIMD8<Float>

    /// Floats of a packed A of `rows` × `depth` (rows rounded up to whole panels).
    @inlinable public static func packedACount(rows: Int, depth: Int) -> Int {
        (rows + panelRows - 1) / panelRows * panelRows * depth
    }

    /// Floats of a packed B of `depth` × `cols` (cols rounded up to whole panels).
    @inlinable public static func packedBCount(depth: Int, cols: Int) -> Int {
        (cols + panelCols - 1) / panelCols * panelCols * depth
    }

    /// Offset of A[row, kk] in a packed A of `depth` columns.
    @inline(__always) public static func aIndex(row: Int, k kk: Int, depth: Int) -> Int {
        aIndex(panel: row / panelRows, lane: row % panelRows, k: kk, depth: depth)
    }

    /// Offset of A[panel·`panelRows` + lane, kk] (for loops that walk the panels, no division).
    @inline(__always) public static func aIndex(panel: Int, lane: Int, k kk: Int, depth: Int) -> Int {
        (panel * depth + kk) * panelRows + lane
    }

    /// Offset of B[kk, col] in a packed B of `depth` rows.
    @inline(__always) public static func bIndex(k kk: Int, col: Int, depth: Int) -> Int {
        ((col / panelCols) * depth + kk) * panelCols + col % panelCols
    }

    /// Floats of A per cache block (A's panels in a block are reused by every B panel).
    static let aBlockFloats = 48 * 1024

    /// c[i·ldc + j] = Σ_kk A[i, kk]·B[kk, j] for i < m, j < n (overwritten), single-threaded.
    public static func multiply(a: UnsafePointer<Float>, rows m: Int, depth k: Int, b: UnsafePointer<Float>,
                                cols n: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(n % 8 == 0 && m >= 0 && k >= 0, "PanelGemm.multiply: cols \(n) must be a multiple of 8")
        if m == 0 || n == 0 { return }
        let R = panelRows, P = panelCols   // the register tile of tile16 / tile8
        let panels = (m + R - 1) / R, block = max(1, aBlockFloats / (R * max(k, 1)))
        var p0 = 0
        while p0 < panels {
            let p1 = min(panels, p0 + block)
            var j = 0
            while j < n {
                let bp = b + (j / P) * k * P, wide = n - j >= P
                for p in p0..<p1 {
                    let ap = a + p * R * k, rows = min(R, m - R * p), cp = c + R * p * ldc + j
                    if wide { tile16(ap, bp, k, cp, ldc, rows) } else { tile8(ap, bp, k, cp, ldc, rows) }
                }
                j += wide ? P : 8
            }
            p0 = p1
        }
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// One 6 × 16 tile: the first `rows` rows of A's panel `ap` times B's panel `bp`.
    @inline(__always) static func tile16(_ ap: UnsafePointer<Float>, _ bp: UnsafePointer<Float>, _ k: Int,
                                         _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int) {
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
        var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
        var a = ap, b = bp
        for _ in 0..<k {
            let b0 = load(b), b1 = load(b + 8)
            var s = V(repeating: a[0]); c00 = MultiplyAdd.madd(c00, s, b0); c01 = MultiplyAdd.madd(c01, s, b1)
            s = V(repeating: a[1]); c10 = MultiplyAdd.madd(c10, s, b0); c11 = MultiplyAdd.madd(c11, s, b1)
            s = V(repeating: a[2]); c20 = MultiplyAdd.madd(c20, s, b0); c21 = MultiplyAdd.madd(c21, s, b1)
            s = V(repeating: a[3]); c30 = MultiplyAdd.madd(c30, s, b0); c31 = MultiplyAdd.madd(c31, s, b1)
            s = V(repeating: a[4]); c40 = MultiplyAdd.madd(c40, s, b0); c41 = MultiplyAdd.madd(c41, s, b1)
            s = V(repeating: a[5]); c50 = MultiplyAdd.madd(c50, s, b0); c51 = MultiplyAdd.madd(c51, s, b1)
            a += 6; b += 16
        }
        store(c00, c); store(c01, c + 8)
        if rows > 1 { store(c10, c + ldc); store(c11, c + ldc + 8) }
        if rows > 2 { store(c20, c + 2 * ldc); store(c21, c + 2 * ldc + 8) }
        if rows > 3 { store(c30, c + 3 * ldc); store(c31, c + 3 * ldc + 8) }
        if rows > 4 { store(c40, c + 4 * ldc); store(c41, c + 4 * ldc + 8) }
        if rows > 5 { store(c50, c + 5 * ldc); store(c51, c + 5 * ldc + 8) }
    }

    /// One 6 × 8 tile (the first 8 columns of a B panel).
    @inline(__always) static func tile8(_ ap: UnsafePointer<Float>, _ bp: UnsafePointer<Float>, _ k: Int,
                                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int) {
        var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
        var a = ap, b = bp
        for _ in 0..<k {
            let b0 = load(b)
            c0 = MultiplyAdd.madd(c0, V(repeating: a[0]), b0); c1 = MultiplyAdd.madd(c1, V(repeating: a[1]), b0)
            c2 = MultiplyAdd.madd(c2, V(repeating: a[2]), b0); c3 = MultiplyAdd.madd(c3, V(repeating: a[3]), b0)
            c4 = MultiplyAdd.madd(c4, V(repeating: a[4]), b0); c5 = MultiplyAdd.madd(c5, V(repeating: a[5]), b0)
            a += 6; b += 16
        }
        store(c0, c)
        if rows > 1 { store(c1, c + ldc) }
        if rows > 2 { store(c2, c + 2 * ldc) }
        if rows > 3 { store(c3, c + 3 * ldc) }
        if rows > 4 { store(c4, c + 4 * ldc) }
        if rows > 5 { store(c5, c + 5 * ldc) }
    }
}
