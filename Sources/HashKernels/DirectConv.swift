/// Direct convolution for layers with few input channels (C ≤ `maximumInputChannels`: the RGB
/// input layers, alexnet's conv1 3→64 11×11/4 and vgg11's conv1 3→64 3×3), any kernel, stride
/// and padding: `Conv2D.forward` and the input-gradient path of `Conv2D.backward` use it whenever
/// `applies` holds (NCHW in and out, as the im2col path).
///
/// Why: with C·k² = 27 (vgg11) or 363 (alexnet) rows, im2col's column matrix is as large as the
/// output, is written and read once per image, and the GEMM's short inner dimension runs it far
/// below its speed (measured on 2 Zen 4 cores, batch 4: vgg11 conv1 forward at 34 % and ∂x at
/// 36 % of sgemm 2048³; alexnet conv1 ∂x at 50 %).
///
/// Method. Stride s is removed by a space-to-depth split: phase (r, q) ∈ [0, s)² of a zero-padded
/// plane P (padding p) is the plane P_rq[a][b] = P[s·a + r][s·b + q]. A tap (c, u, v) of the
/// kernel then reads phase (u mod s, v mod s) of channel c at the constant offset
/// (⌊u/s⌋, ⌊v/s⌋) from the output position (i, j): every output row is a sum over the C·k²
/// taps of weight × a contiguous run of one phase row, with no column matrix.
/// - Forward: per image, the C·s² phase planes (Hq × Wq, Hq = OH + ⌊(k−1)/s⌋,
///   Wq = OW + ⌊(k−1)/s⌋) are built once; each register tile is 4 output channels × 24 output
///   pixels of one row (3 × 8 float lanes, 12 accumulators), summed over the taps in the fixed
///   order (c, u, v) with the weights repacked to [channel group][tap][4] (once per call); the
///   bias and the ReLU are applied as the tile is stored into y.
/// - Input gradient ∂x[c][h][w] = Σ_{o,u,v} w[o, c, u, v] · δ[o][i][j] over h + p = s·i + u,
///   w + p = s·j + v: for the phase (r, q) of (h + p, w + p) = (s·m + r, s·n + q) it is
///   Σ_o Σ_{du, dv} w[o, c, r + s·du, q + s·dv] · δ[o][m − du][n − dv], a correlation of δ with
///   ⌈(k − r)/s⌉ × ⌈(k − q)/s⌉ taps. δ is copied a band of rows at a time into a buffer with
///   ⌈k/s⌉ − 1 zero rows and columns in front (and zeros behind), so every tap is again a
///   contiguous run; each register tile is the C (≤ 4) input channels × 24 pixels of one phase
///   row, summed over the taps (o, du, dv) in that order.
/// Rounding: every value is one sum of its C·k² (forward, then + bias) or O·k²-or-fewer (∂x)
/// products in a fixed order, so the float32 bound γ_{C·k²+1}·(|b| + Σ|w·x|) (γ_{O·k²}·Σ|w·δ|)
/// of the direct sum holds. Values do not depend on the thread count, the batch or the image's
/// place in it: each image is computed alone by one thread with tiles that depend only on the
/// layer's sizes.
public enum DirectConv {
    /// Largest input channel count for which `Conv2D` uses this path.
    public static let maximumInputChannels = 4

    /// True when `Conv2D` computes this layer's forward and input gradient here.
    @inlinable public static func applies(_ g: Conv2DGeometry) -> Bool {
        g.inChannels <= maximumInputChannels
    }

    typealias V = SIMD8<Float>
    /// Output channels of a forward register tile (and the padded width of ∂x's channel tile).
    @usableFromInline static let rowsPerTile = 4
    /// Floats of slack after every buffer: the last (partial) vector of a tile reads up to 23
    /// floats past the last position it stores.
    @usableFromInline static let slack = 32

    /// Taps of a phase along one axis at most, ⌈k/s⌉ (so ⌈k/s⌉ − 1 is the largest offset).
    @inlinable static func phaseTaps(_ g: Conv2DGeometry) -> Int { (g.kernel + g.stride - 1) / g.stride }

    /// Phase plane sizes of the forward: Hq × Wq.
    @inlinable static func phasePlane(_ g: Conv2DGeometry) -> (rows: Int, cols: Int) {
        let e = phaseTaps(g) - 1
        return (g.outHeight + e, g.outWidth + e)
    }

    /// Phase columns of ∂x: n ∈ [0, N) covers every w + p = s·n + q with w < W.
    @inlinable static func gradientPhaseCols(_ g: Conv2DGeometry) -> Int { (g.width - 1 + g.padding) / g.stride + 1 }
    @inlinable static func gradientPhaseRows(_ g: Conv2DGeometry) -> Int { (g.height - 1 + g.padding) / g.stride + 1 }

    /// Row stride of ∂x's δ band buffer: ⌈k/s⌉ − 1 leading zero columns, then the phase columns
    /// (or all of δ's columns, whichever is more).
    @inlinable static func bandStride(_ g: Conv2DGeometry) -> Int {
        phaseTaps(g) - 1 + max(g.outWidth, gradientPhaseCols(g))
    }

    /// Phase rows of ∂x per band: the band buffer (O planes of band + ⌈k/s⌉ − 1 rows) within
    /// about 512 KiB, at least 1; depends only on the layer's sizes.
    @inlinable static func bandRows(_ g: Conv2DGeometry) -> Int {
        let perRow = g.outChannels * bandStride(g)
        let rows = max(1, (1 << 17) / max(1, perRow) - (phaseTaps(g) - 1))
        return min(rows, gradientPhaseRows(g))
    }

    /// Row stride of ∂x's partial sums of one phase row (4 rows: the C channels and padding).
    @inlinable static func sumStride(_ g: Conv2DGeometry) -> Int { gradientPhaseCols(g) + 32 }

    /// Output channels per chunk of ∂x's taps: a register tile's δ runs of one chunk (16 channels
    /// × ⌈k/s⌉ rows) stay in L1 while the tile moves along the row; the partial sums go through
    /// `sumStride`'s buffer between chunks (exactly the same operations as one pass).
    static let gradientChunk = 16

    /// Per-thread scratch floats: the forward's phase planes or ∂x's δ band and partial sums,
    /// whichever is larger.
    @inlinable static func scratchCount(_ g: Conv2DGeometry) -> Int {
        let (hq, wq) = phasePlane(g)
        let planes = g.inChannels * g.stride * g.stride * hq * wq
        let band = g.outChannels * (bandRows(g) + phaseTaps(g) - 1) * bandStride(g) + slack + rowsPerTile * sumStride(g)
        return max(planes, band) + slack
    }

    /// Shared floats of the repacked weights (forward: ⌈O/4⌉·4·C·k²; ∂x: O·k²·4).
    @inlinable static func weightCount(_ g: Conv2DGeometry) -> Int {
        let groups = (g.outChannels + rowsPerTile - 1) / rowsPerTile
        return max(groups * rowsPerTile * g.patchSize, g.outChannels * g.kernel * g.kernel * rowsPerTile)
    }

    /// ⌊a/b⌋ for b > 0 (Swift's / truncates toward zero).
    @inline(__always) static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

    // MARK: register tiles

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// acc + a·b (`MultiplyAdd.madd`: fused where the build's CPU has FMA).
    @inline(__always) static func madd(_ acc: V, _ a: V, _ b: V) -> V { MultiplyAdd.madd(acc, a, b) }

    /// A 4-row × 24-lane register tile (rows r, vectors 0…2).
    struct Tile {
        var a00 = V(), a01 = V(), a02 = V(), a10 = V(), a11 = V(), a12 = V()
        var a20 = V(), a21 = V(), a22 = V(), a30 = V(), a31 = V(), a32 = V()
        @inline(__always) func row(_ r: Int) -> (V, V, V) {
            switch r {
            case 0: return (a00, a01, a02)
            case 1: return (a10, a11, a12)
            case 2: return (a20, a21, a22)
            default: return (a30, a31, a32)
            }
        }
    }

    /// Σ_t w[4t + r] · src[offsets[t] + l] for r < 4 and the lanes l < 8·`vectors` (1…3), over
    /// t < `taps` in increasing order, one value per lane and row.
    @inline(__always)
    static func tile(_ vectors: Int, _ src: UnsafePointer<Float>, _ offsets: UnsafePointer<Int>,
                     _ w: UnsafePointer<Float>, taps: Int, from start: UnsafePointer<Float>? = nil, ld: Int = 0) -> Tile {
        var t = Tile()
        if let a = start {
            // Continue sums stored by an earlier call (rows ld apart): the same sequence of
            // operations as one call over all the taps.
            t.a00 = load(a); t.a10 = load(a + ld); t.a20 = load(a + 2 * ld); t.a30 = load(a + 3 * ld)
            if vectors > 1 { t.a01 = load(a + 8); t.a11 = load(a + ld + 8); t.a21 = load(a + 2 * ld + 8); t.a31 = load(a + 3 * ld + 8) }
            if vectors > 2 { t.a02 = load(a + 16); t.a12 = load(a + ld + 16); t.a22 = load(a + 2 * ld + 16); t.a32 = load(a + 3 * ld + 16) }
        }
        var wt = w
        for k in 0..<taps {
            // Vectors first, then one broadcast weight at a time: 12 accumulators + 3 vectors + 1
            // weight fill the 16 AVX2 registers exactly.
            let p = src + offsets[k]
            let x0 = load(p), x1 = vectors > 1 ? load(p + 8) : V(), x2 = vectors > 2 ? load(p + 16) : V()
            var wr = V(repeating: wt[0])
            t.a00 = madd(t.a00, x0, wr)
            if vectors > 1 { t.a01 = madd(t.a01, x1, wr) }
            if vectors > 2 { t.a02 = madd(t.a02, x2, wr) }
            wr = V(repeating: wt[1])
            t.a10 = madd(t.a10, x0, wr)
            if vectors > 1 { t.a11 = madd(t.a11, x1, wr) }
            if vectors > 2 { t.a12 = madd(t.a12, x2, wr) }
            wr = V(repeating: wt[2])
            t.a20 = madd(t.a20, x0, wr)
            if vectors > 1 { t.a21 = madd(t.a21, x1, wr) }
            if vectors > 2 { t.a22 = madd(t.a22, x2, wr) }
            wr = V(repeating: wt[3])
            t.a30 = madd(t.a30, x0, wr)
            if vectors > 1 { t.a31 = madd(t.a31, x1, wr) }
            if vectors > 2 { t.a32 = madd(t.a32, x2, wr) }
            wt += 4
        }
        return t
    }

    /// `tile` over the `lanes` (1…24) lanes from `src`, the vector count picked from `lanes`.
    @inline(__always)
    static func tile(lanes: Int, _ src: UnsafePointer<Float>, _ offsets: UnsafePointer<Int>,
                     _ w: UnsafePointer<Float>, taps: Int, from start: UnsafePointer<Float>? = nil, ld: Int = 0) -> Tile {
        if lanes > 16 { return tile(3, src, offsets, w, taps: taps, from: start, ld: ld) }
        if lanes > 8 { return tile(2, src, offsets, w, taps: taps, from: start, ld: ld) }
        return tile(1, src, offsets, w, taps: taps, from: start, ld: ld)
    }

    /// The register tiles of ∂x: `Tile` (4 rows × 24 lanes, channels padded to 4) and, for
    /// 3-channel layers, `Tile3` (3 rows × 32 lanes, no padding row).
    protocol GradientTile {
        static var rows: Int { get }
        static var width: Int { get }
        static func compute(lanes: Int, _ src: UnsafePointer<Float>, _ offsets: UnsafePointer<Int>,
                            _ w: UnsafePointer<Float>, taps: Int, from: UnsafePointer<Float>?, ld: Int) -> Self
        /// Vector i (lanes 8i ..< 8i + 8) of row r.
        func vector(_ r: Int, _ i: Int) -> V
    }

    /// A 3-row × 32-lane register tile (rows r, vectors 0…3): ∂x of a 3-channel layer (no
    /// padding row; 12 accumulators + 3 broadcast weights + 1 vector fill the 16 AVX2 registers).
    struct Tile3 {
        var a00 = V(), a01 = V(), a02 = V(), a03 = V(), a10 = V(), a11 = V(), a12 = V(), a13 = V()
        var a20 = V(), a21 = V(), a22 = V(), a23 = V()
    }

    /// Σ_t w[3t + r] · src[offsets[t] + l] for r < 3 and the lanes l < 8·`vectors` (1…4), over t
    /// < `taps` in increasing order, continuing the sums at `start` (rows ld apart) when given.
    @inline(__always)
    static func tile3(_ vectors: Int, _ src: UnsafePointer<Float>, _ offsets: UnsafePointer<Int>,
                      _ w: UnsafePointer<Float>, taps: Int, from start: UnsafePointer<Float>?, ld: Int) -> Tile3 {
        var t = Tile3()
        if let a = start {
            t.a00 = load(a); t.a10 = load(a + ld); t.a20 = load(a + 2 * ld)
            if vectors > 1 { t.a01 = load(a + 8); t.a11 = load(a + ld + 8); t.a21 = load(a + 2 * ld + 8) }
            if vectors > 2 { t.a02 = load(a + 16); t.a12 = load(a + ld + 16); t.a22 = load(a + 2 * ld + 16) }
            if vectors > 3 { t.a03 = load(a + 24); t.a13 = load(a + ld + 24); t.a23 = load(a + 2 * ld + 24) }
        }
        var wt = w
        for k in 0..<taps {
            let p = src + offsets[k]
            let w0 = V(repeating: wt[0]), w1 = V(repeating: wt[1]), w2 = V(repeating: wt[2])
            wt += 3
            var x = load(p)
            t.a00 = madd(t.a00, x, w0); t.a10 = madd(t.a10, x, w1); t.a20 = madd(t.a20, x, w2)
            if vectors > 1 {
                x = load(p + 8)
                t.a01 = madd(t.a01, x, w0); t.a11 = madd(t.a11, x, w1); t.a21 = madd(t.a21, x, w2)
            }
            if vectors > 2 {
                x = load(p + 16)
                t.a02 = madd(t.a02, x, w0); t.a12 = madd(t.a12, x, w1); t.a22 = madd(t.a22, x, w2)
            }
            if vectors > 3 {
                x = load(p + 24)
                t.a03 = madd(t.a03, x, w0); t.a13 = madd(t.a13, x, w1); t.a23 = madd(t.a23, x, w2)
            }
        }
        return t
    }

    /// Stores lanes [0, lanes) of (v0, v1, v2) + bias (then ReLU'd) at dst.
    @inline(__always)
    static func storeRow(_ v: (V, V, V), lanes: Int, bias: Float, relu: Bool, _ dst: UnsafeMutablePointer<Float>) {
        let bv = V(repeating: bias), zero = V()
        @inline(__always) func finish(_ x: V) -> V {
            var y = x + bv
            if relu { y.replace(with: zero, where: y .< zero) }
            return y
        }
        if lanes == 24 {
            store(finish(v.0), dst); store(finish(v.1), dst + 8); store(finish(v.2), dst + 16)
            return
        }
        @inline(__always) func vector(_ i: Int) -> V { finish(i == 0 ? v.0 : (i == 1 ? v.1 : v.2)) }
        var l = 0
        while l + 8 <= lanes { store(vector(l / 8), dst + l); l += 8 }
        if l < lanes {
            let last = vector(l / 8)
            for m in 0..<(lanes - l) { dst[l + m] = last[m] }
        }
    }

    // MARK: forward

    /// The forward's shared state for one call: repacked weights [group][tap][4] and the tap
    /// offsets into the phase planes.
    struct ForwardPlan {
        let weights: UnsafeMutablePointer<Float>
        let offsets: [Int]
        init(_ w: UnsafePointer<Float>, _ g: Conv2DGeometry, into packed: UnsafeMutablePointer<Float>) {
            let K = g.patchSize, O = g.outChannels, k = g.kernel, s = g.stride
            let groups = (O + rowsPerTile - 1) / rowsPerTile
            for gr in 0..<groups {
                for t in 0..<K {
                    for r in 0..<rowsPerTile {
                        let o = gr * rowsPerTile + r
                        packed[(gr * K + t) * rowsPerTile + r] = o < O ? w[o * K + t] : 0
                    }
                }
            }
            weights = packed
            let (hq, wq) = phasePlane(g)
            var offs = [Int](repeating: 0, count: K)
            for c in 0..<g.inChannels { for u in 0..<k { for v in 0..<k {
                offs[(c * k + u) * k + v] = ((c * s + u % s) * s + v % s) * hq * wq + (u / s) * wq + v / s
            } } }
            offsets = offs
        }
    }

    /// Writes the C·s² phase planes of image x (C, H, W) into `planes` (zero padding, zeros past
    /// the padded image), then `slack` zeros.
    static func buildPhasePlanes(_ x: UnsafePointer<Float>, _ g: Conv2DGeometry, into planes: UnsafeMutablePointer<Float>) {
        let s = g.stride, p = g.padding, H = g.height, W = g.width
        let (hq, wq) = phasePlane(g)
        for c in 0..<g.inChannels {
            for r in 0..<s {
                for q in 0..<s {
                    let plane = planes + ((c * s + r) * s + q) * hq * wq
                    // Columns b with 0 ≤ s·b + q − p < W: [bLo, bHi).
                    let bLo = min(wq, max(0, (p - q + s - 1) / s))
                    let bHi = max(bLo, min(wq, floorDiv(W - 1 + p - q, s) + 1))
                    for a in 0..<hq {
                        let dst = plane + a * wq
                        let h = s * a + r - p
                        if h < 0 || h >= H { Elementwise.fillZero(dst, count: wq); continue }
                        let src = x + (c * H + h) * W + (q - p)
                        for b in 0..<bLo { dst[b] = 0 }
                        if s == 1 {
                            Elementwise.copy(src + bLo, to: dst + bLo, count: bHi - bLo)
                        } else {
                            for b in bLo..<bHi { dst[b] = src[s * b] }
                        }
                        for b in bHi..<wq { dst[b] = 0 }
                    }
                }
            }
        }
        Elementwise.fillZero(planes + g.inChannels * s * s * hq * wq, count: slack)
    }

    /// y (O, OH, OW) = conv(x, w) + b (ReLU'd with `relu`) of one image x (C, H, W).
    static func forwardImage(_ x: UnsafePointer<Float>, _ plan: ForwardPlan, bias b: UnsafePointer<Float>?,
                             relu: Bool, _ g: Conv2DGeometry, into y: UnsafeMutablePointer<Float>,
                             scratch: UnsafeMutablePointer<Float>) {
        buildPhasePlanes(x, g, into: scratch)
        let K = g.patchSize, O = g.outChannels, OW = g.outWidth, P = g.outPlane
        let wq = phasePlane(g).cols
        let groups = (O + rowsPerTile - 1) / rowsPerTile
        plan.offsets.withUnsafeBufferPointer { ob in
            let offs = ob.baseAddress!
            for i in 0..<g.outHeight {
                let src = UnsafePointer(scratch) + i * wq
                for gr in 0..<groups {
                    let wg = UnsafePointer(plan.weights) + gr * K * rowsPerTile
                    let o0 = gr * rowsPerTile, rows = min(rowsPerTile, O - o0)
                    var j = 0
                    while j < OW {
                        let lanes = min(24, OW - j)
                        let t = tile(lanes: lanes, src + j, offs, wg, taps: K)
                        for r in 0..<rows {
                            storeRow(t.row(r), lanes: lanes, bias: b?[o0 + r] ?? 0, relu: relu,
                                     y + (o0 + r) * P + i * OW + j)
                        }
                        j += lanes
                    }
                }
            }
        }
    }

    // MARK: input gradient

    /// ∂x's shared state for one call: per phase (r, q) (index r·s + q), its taps (o, du, dv) with
    /// their weights w[o, c, r + s·du, q + s·dv] packed [tap][4] (zeros for c ≥ C) and their
    /// offsets into the δ band buffer.
    struct GradientPlan {
        let weights: UnsafeMutablePointer<Float>
        let offsets: [Int]
        /// First tap of phase φ: phaseStart[φ] ..< phaseStart[φ + 1].
        let phaseStart: [Int]
        /// Rows of the register tile (`gradientRows`): the weights' packing stride.
        let rows: Int
        init(_ w: UnsafePointer<Float>, _ g: Conv2DGeometry, into packed: UnsafeMutablePointer<Float>) {
            let rows = gradientRows(g)
            self.rows = rows
            let s = g.stride, k = g.kernel, C = g.inChannels, O = g.outChannels
            let e = phaseTaps(g) - 1, ld = bandStride(g), plane = (bandRows(g) + e) * ld
            var offs = [Int](), starts = [0]
            var t = 0
            for r in 0..<s {
                for q in 0..<s {
                    for o in 0..<O {
                        var du = 0
                        while r + s * du < k {
                            var dv = 0
                            while q + s * dv < k {
                                let u = r + s * du, v = q + s * dv
                                for c in 0..<rows {
                                    packed[t * rows + c] = c < C ? w[((o * C + c) * k + u) * k + v] : 0
                                }
                                offs.append(o * plane + (e - du) * ld + (e - dv))
                                t += 1
                                dv += 1
                            }
                            du += 1
                        }
                    }
                    starts.append(t)
                }
            }
            weights = packed; offsets = offs; phaseStart = starts
        }
    }

    /// dx (C, H, W) of one image from its output gradient d (O, OH, OW) (overwritten).
    static func gradientImage(_ d: UnsafePointer<Float>, _ plan: GradientPlan, _ g: Conv2DGeometry,
                              into dx: UnsafeMutablePointer<Float>, scratch band: UnsafeMutablePointer<Float>) {
        if plan.rows == 3 {
            gradientImage(d, plan, g, into: dx, scratch: band, tile: Tile3.self)
        } else {
            gradientImage(d, plan, g, into: dx, scratch: band, tile: Tile.self)
        }
    }

    /// Tile rows of ∂x: 3 for 3-channel layers (`Tile3`), else 4 (`Tile`, channels padded).
    static func gradientRows(_ g: Conv2DGeometry) -> Int { g.inChannels == 3 ? 3 : 4 }

    static func gradientImage<T: GradientTile>(_ d: UnsafePointer<Float>, _ plan: GradientPlan, _ g: Conv2DGeometry,
                                               into dx: UnsafeMutablePointer<Float>, scratch band: UnsafeMutablePointer<Float>,
                                               tile _: T.Type) {
        let R = T.rows, L = T.width
        let s = g.stride, p = g.padding, H = g.height, W = g.width, C = g.inChannels
        let O = g.outChannels, OH = g.outHeight, OW = g.outWidth
        let e = phaseTaps(g) - 1, ld = bandStride(g), rowsPer = bandRows(g), plane = (rowsPer + e) * ld
        let M = gradientPhaseRows(g)
        let sums = band + O * plane + slack, ls = sumStride(g)
        plan.offsets.withUnsafeBufferPointer { ob in
            let offs = ob.baseAddress!
            var m0 = 0
            while m0 < M {
                let m1 = min(M, m0 + rowsPer)
                // Band: δ rows i ∈ [m0 − e, m1) of every channel at band row i − (m0 − e), column
                // j at e + j; zeros elsewhere.
                for o in 0..<O {
                    for r in 0..<(m1 - m0 + e) {
                        let i = m0 - e + r, dst = band + o * plane + r * ld
                        if i < 0 || i >= OH { Elementwise.fillZero(dst, count: ld); continue }
                        for j in 0..<e { dst[j] = 0 }
                        Elementwise.copy(d + (o * OH + i) * OW, to: dst + e, count: OW)
                        Elementwise.fillZero(dst + e + OW, count: ld - e - OW)
                    }
                }
                Elementwise.fillZero(band + O * plane, count: slack)
                for r in 0..<s {
                    for q in 0..<s {
                        let phase = r * s + q
                        let t0 = plan.phaseStart[phase], taps = plan.phaseStart[phase + 1] - t0
                        let wts = UnsafePointer(plan.weights) + t0 * R, po = offs + t0
                        // Phase columns n with 0 ≤ s·n + q − p < W: [nLo, nHi).
                        let nLo = max(0, (p - q + s - 1) / s), nHi = floorDiv(W - 1 + p - q, s) + 1
                        if nHi <= nLo { continue }
                        let perChannel = taps / O   // taps (du, dv) of each output channel
                        for m in m0..<m1 {
                            let h = s * m + r - p
                            if h < 0 || h >= H { continue }
                            let src = UnsafePointer(band) + (m - m0) * ld
                            // Chunks of output channels but the last: partial sums into `sums`.
                            var o0 = 0
                            while o0 + gradientChunk < O {
                                let ta = o0 * perChannel, tb = (o0 + gradientChunk) * perChannel
                                var n = nLo
                                while n < nHi {
                                    let lanes = min(L, nHi - n), at = sums + (n - nLo)
                                    let t = T.compute(lanes: lanes, src + n, po + ta, wts + ta * R, taps: tb - ta,
                                                      from: o0 == 0 ? nil : UnsafePointer(at), ld: ls)
                                    for r in 0..<R { for i in 0..<(L / 8) { store(t.vector(r, i), at + r * ls + 8 * i) } }
                                    n += lanes
                                }
                                o0 += gradientChunk
                            }
                            let ta = o0 * perChannel
                            var n = nLo
                            while n < nHi {
                                let lanes = min(L, nHi - n)
                                let t = T.compute(lanes: lanes, src + n, po + ta, wts + ta * R, taps: taps - ta,
                                                  from: o0 == 0 ? nil : UnsafePointer(sums + (n - nLo)), ld: ls)
                                let w0 = s * n + q - p
                                for c in 0..<C {
                                    let row = dx + (c * H + h) * W + w0
                                    var l = 0
                                    if s == 1 {
                                        while l + 8 <= lanes { store(t.vector(c, l / 8), row + l); l += 8 }
                                    }
                                    while l < lanes {
                                        let v = t.vector(c, l / 8)
                                        let e = min(lanes, (l / 8 + 1) * 8)
                                        while l < e { row[s * l] = v[l % 8]; l += 1 }
                                    }
                                }
                                n += lanes
                            }
                        }
                    }
                }
                m0 = m1
            }
        }
    }
}

extension DirectConv.Tile: DirectConv.GradientTile {
    static var rows: Int { 4 }
    static var width: Int { 24 }
    @inline(__always)
    static func compute(lanes: Int, _ src: UnsafePointer<Float>, _ offsets: UnsafePointer<Int>,
                        _ w: UnsafePointer<Float>, taps: Int, from: UnsafePointer<Float>?, ld: Int) -> Self {
        DirectConv.tile(lanes: lanes, src, offsets, w, taps: taps, from: from, ld: ld)
    }
    @inline(__always) func vector(_ r: Int, _ i: Int) -> DirectConv.V {
        let v = row(r)
        return i == 0 ? v.0 : (i == 1 ? v.1 : v.2)
    }
}

extension DirectConv.Tile3: DirectConv.GradientTile {
    static var rows: Int { 3 }
    static var width: Int { 32 }
    @inline(__always)
    static func compute(lanes: Int, _ src: UnsafePointer<Float>, _ offsets: UnsafePointer<Int>,
                        _ w: UnsafePointer<Float>, taps: Int, from: UnsafePointer<Float>?, ld: Int) -> Self {
        if lanes > 24 { return DirectConv.tile3(4, src, offsets, w, taps: taps, from: from, ld: ld) }
        if lanes > 16 { return DirectConv.tile3(3, src, offsets, w, taps: taps, from: from, ld: ld) }
        if lanes > 8 { return DirectConv.tile3(2, src, offsets, w, taps: taps, from: from, ld: ld) }
        return DirectConv.tile3(1, src, offsets, w, taps: taps, from: from, ld: ld)
    }
    @inline(__always) func vector(_ r: Int, _ i: Int) -> DirectConv.V {
        switch (r, i) {
        case (0, 0): return a00
        case (0, 1): return a01
        case (0, 2): return a02
        case (0, 3): return a03
        case (1, 0): return a10
        case (1, 1): return a11
        case (1, 2): return a12
        case (1, 3): return a13
        case (2, 0): return a20
        case (2, 1): return a21
        case (2, 2): return a22
        default: return a23
        }
    }
}
