/// Winograd F(2×2, 3×3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
/// Networks", CVPR 2016) for 3×3, stride-1, padding-1 layers with at least 16 input and output
/// channels on images of at least 100 tiles (20×20): `Conv2D.forward` and the input-gradient path
/// of `Conv2D.backward` use it whenever `applies` holds (vgg11's layers from 112×112 to 28×28);
/// weight gradients stay on im2col.
///
/// Each 2×2 output tile of one output channel is Aᵀ·[Σ_c (G·w[o,c]·Gᵀ) ⊙ (Bᵀ·d_c·B)]·A, where d_c
/// is the 4×4 input patch of channel c under the tile (zero outside the image) and
///   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
///   Aᵀ = [1 1 1 0; 0 1 −1 −1].
/// The sum over c for each of the 16 transform positions ξ is one GEMM M_ξ (O, T) = U_ξ (O, C) ·
/// V_ξ (C, T) over a block of T tiles (whole rows of tiles of one image), so an output costs 16/36
/// of the direct method's multiplications (2.25× fewer) at the GEMM's speed, plus transforms
/// linear in C + O.
/// The transforms run on 8 tiles at a time: the padded image copy stores each row as its even
/// columns followed by its odd ones, so every tile's four columns are contiguous vector loads.
///
/// Rounding (float32, unit u): the input transform rounds twice, the filter transform four times
/// (×½ is exact), the product once, the GEMM sums C terms, the output transform rounds four times,
/// so |computed − exact| ≤ γ_{C+11} · |Aᵀ|·[Σ_c (|G|·|w|·|Gᵀ|) ⊙ (|Bᵀ|·|d|·|B|)]·|A| (one more
/// rounding with the bias). That magnitude is larger than the direct sum's Σ|w·x| (it mixes the
/// weights and inputs of neighbouring taps); the tests bound Winograd layers with it.
/// Results do not depend on the thread count: the tile blocks depend only on the layer's sizes.
public enum Winograd {
    /// Smallest input and output channel counts for which the GEMMs over channels pay for the
    /// transforms (below it, e.g. an RGB input layer, im2col is faster).
    public static let minimumChannels = 16
    /// Smallest number of 2×2 tiles per image (⌈H/2⌉·⌈W/2⌉): below it the per-image GEMMs are too
    /// narrow and im2col is faster (measured on 2 Zen 3 cores: alexnet's 13×13 and vgg11's 14×14
    /// layers ran at 0.5–0.7× of im2col, also when 3 images were convolved together, which then
    /// split the batch unevenly over the threads).
    public static let minimumTiles = 100

    /// True when `Conv2D` computes this layer's forward and input gradient with Winograd.
    @inlinable public static func applies(_ g: Conv2DGeometry) -> Bool {
        g.kernel == 3 && g.stride == 1 && g.padding == 1 &&
            g.inChannels >= minimumChannels && g.outChannels >= minimumChannels &&
            ((g.height + 1) / 2) * ((g.width + 1) / 2) >= minimumTiles
    }

    /// Floats of the transformed filters of a layer with `inChannels` × `outChannels`: 16·C·O.
    @inlinable public static func filterCount(inChannels: Int, outChannels: Int) -> Int {
        16 * inChannels * outChannels
    }

    /// Rows of tiles per GEMM block: the block's transformed inputs and products, 16·(C + O)·T
    /// floats, stay within about 4 MiB (cache-resident between the transform and the GEMM).
    @inlinable static func blockRows(cin: Int, cout: Int, tileRows: Int, tileCols: Int) -> Int {
        let tiles = max(64, (1 << 20) / (16 * (cin + cout)))
        return min(tileRows, max(1, tiles / tileCols))
    }

    /// Scratch floats `convolveImage` needs: the image's padded copy and one block's transformed
    /// inputs and products.
    public static func scratchCount(cin: Int, cout: Int, height: Int, width: Int) -> Int {
        let th = (height + 1) / 2, tw = (width + 1) / 2
        let n = blockRows(cin: cin, cout: cout, tileRows: th, tileCols: tw) * tw
        return cin * (2 * th + 2) * (2 * tw + 2) + 16 * (cin + cout) * n
    }

    /// U_ξ = G·f·Gᵀ at position ξ = 4a + b for every filter pair, written as U (16, rows, cols):
    /// - forward (`adjoint` false): rows = O, cols = C, f = w[o, c];
    /// - input gradient (`adjoint` true): rows = C, cols = O, f = w[o, c] rotated by 180°, the
    ///   filters of the transposed convolution ∂x = conv(δ, rot180(w)ᵀ, padding 1).
    /// Split over `threads` by output channel (each value computed by one thread).
    public static func transformFilters(_ w: UnsafePointer<Float>, outChannels O: Int, inChannels C: Int,
                                        adjoint: Bool, into U: UnsafeMutablePointer<Float>, threads: Int = 0) {
        let plane = O * C
        ParallelFor.split(count: O, threads: threads) { _, outs in
            for o in outs {
                for c in 0..<C {
                    let src = w + (o * C + c) * 9
                    @inline(__always) func f(_ t: Int) -> Float { adjoint ? src[8 - t] : src[t] }
                    // G·f (4×3): column v of f gives column v of G·f; then (G·f)·Gᵀ row by row.
                    let g0 = gTimes(f(0), f(3), f(6)), g1 = gTimes(f(1), f(4), f(7)), g2 = gTimes(f(2), f(5), f(8))
                    let dst = adjoint ? c * O + o : o * C + c
                    for r in 0..<4 {
                        let row = gTimes(g0[r], g1[r], g2[r])
                        for b in 0..<4 { U[(4 * r + b) * plane + dst] = row[b] }
                    }
                }
            }
        }
    }

    /// G·(a, b, c)ᵀ = (a, (a + b + c)/2, (a − b + c)/2, c): two roundings (×½ is exact).
    @inline(__always) static func gTimes(_ a: Float, _ b: Float, _ c: Float) -> SIMD4<Float> {
        SIMD4(a, (a + b + c) * 0.5, (a - b + c) * 0.5, c)
    }

    typealias V8 = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ count: Int) -> V8 {
        if count >= 8 { return UnsafeRawPointer(p).loadUnaligned(as: V8.self) }
        var v = V8()
        for l in 0..<count { v[l] = p[l] }
        return v
    }

    @inline(__always) static func store(_ v: V8, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
        if count >= 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self); return }
        for l in 0..<count { p[l] = v[l] }
    }

    /// y (cout, H, W) = the 3×3, padding-1 cross-correlation of x (cin, H, W) with the filters
    /// transformed by `transformFilters` (U: 16, cout, cin); y is overwritten, no bias.
    /// `scratch` holds `scratchCount(cin:cout:height:width:)` floats. Single-threaded (callers
    /// split the batch; OpenBLAS runs single-threaded inside saat's worker threads).
    public static func convolveImage(_ x: UnsafePointer<Float>, cin C: Int, cout O: Int, height H: Int, width W: Int,
                                     filters U: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                                     scratch: UnsafeMutablePointer<Float>) {
        let TH = (H + 1) / 2, TW = (W + 1) / 2
        // Padded copy: rows 0 … 2·TH + 1 (image row h at h + 1), each stored as its TW + 1 even
        // columns then its TW + 1 odd ones (image column w at padded column w + 1); zeros elsewhere.
        let half = TW + 1, rowStride = 2 * half, padPlane = (2 * TH + 2) * rowStride
        let rows = blockRows(cin: C, cout: O, tileRows: TH, tileCols: TW)
        let pad = scratch, V = pad + C * padPlane, M = V + 16 * C * rows * TW
        Elementwise.fillZero(pad, count: C * padPlane)
        for c in 0..<C {
            for h in 0..<H {
                let src = x + (c * H + h) * W, even = pad + c * padPlane + (h + 1) * rowStride, odd = even + half
                var w = 0
                while w + 1 < W { odd[w / 2] = src[w]; even[w / 2 + 1] = src[w + 1]; w += 2 }
                if w < W { odd[w / 2] = src[w] }
            }
        }
        // Tile rows in blocks of `rows`.
        var tr0 = 0
        while tr0 < TH {
            let nr = min(rows, TH - tr0), n = nr * TW
            // V_ξ (C, n) = Bᵀ·d·B of each tile's 4×4 patch, 8 tiles at a time.
            let vs = C * n
            for c in 0..<C {
                for r in 0..<nr {
                    let top = pad + c * padPlane + 2 * (tr0 + r) * rowStride
                    let out = V + c * n + r * TW
                    var j = 0
                    while j < TW {
                        let k = min(8, TW - j)
                        // Patch row k (padded row 2·ti + k): columns E[j], O[j], E[j+1], O[j+1]
                        // as a, c, b, d below, for 8 tiles j … j + 7.
                        let p0 = top + j, p1 = p0 + rowStride, p2 = p1 + rowStride, p3 = p2 + rowStride
                        // even columns at j and j + 1, odd columns at j and j + 1, for rows 0 … 3
                        let a0 = load(p0, k), b0 = load(p0 + 1, k), c0 = load(p0 + half, k), d0 = load(p0 + half + 1, k)
                        let a1 = load(p1, k), b1 = load(p1 + 1, k), c1 = load(p1 + half, k), d1 = load(p1 + half + 1, k)
                        let a2 = load(p2, k), b2 = load(p2 + 1, k), c2 = load(p2 + half, k), d2 = load(p2 + half + 1, k)
                        let a3 = load(p3, k), b3 = load(p3 + 1, k), c3 = load(p3 + half, k), d3 = load(p3 + half + 1, k)
                        // Bᵀ·d along the rows (d0 − d2, d1 + d2, d2 − d1, d1 − d3) gives row a of
                        // the transform; ·B along its columns (E, E⁺, O, O⁺) → E − E⁺, O + E⁺,
                        // E⁺ − O, O − O⁺ gives ξ = 4a + b.
                        @inline(__always) func cols(_ e: V8, _ e1: V8, _ o: V8, _ o1: V8, _ a: Int) {
                            let q = out + j + 4 * a * vs
                            store(e - e1, q, k)
                            store(o + e1, q + vs, k)
                            store(e1 - o, q + 2 * vs, k)
                            store(o - o1, q + 3 * vs, k)
                        }
                        cols(a0 - a2, b0 - b2, c0 - c2, d0 - d2, 0)
                        cols(a1 + a2, b1 + b2, c1 + c2, d1 + d2, 1)
                        cols(a2 - a1, b2 - b1, c2 - c1, d2 - d1, 2)
                        cols(a1 - a3, b1 - b3, c1 - c3, d1 - d3, 3)
                        j += 8
                    }
                }
            }
            // M_ξ (O, n) = U_ξ (O, C) · V_ξ (C, n).
            for xi in 0..<16 {
                BLAS.sgemm(m: O, n: n, k: C, a: U + xi * O * C, lda: C, b: V + xi * vs, ldb: n,
                           c: M + xi * O * n, ldc: n)
            }
            // y tile = Aᵀ·m·A: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3 over the rows a, then the same
            // over the columns b, 8 tiles at a time; stores interleave the tiles' two columns.
            let ms = O * n
            for o in 0..<O {
                for r in 0..<nr {
                    let i = 2 * (tr0 + r)
                    let row0 = y + (o * H + i) * W
                    let src = M + o * n + r * TW
                    var j = 0
                    while j < TW {
                        let k = min(8, TW - j)
                        @inline(__always) func m(_ a: Int, _ b: Int) -> V8 { load(src + j + (4 * a + b) * ms, k) }
                        let s00 = m(0, 0) + m(1, 0) + m(2, 0), s01 = m(0, 1) + m(1, 1) + m(2, 1)
                        let s02 = m(0, 2) + m(1, 2) + m(2, 2), s03 = m(0, 3) + m(1, 3) + m(2, 3)
                        let s10 = m(1, 0) - m(2, 0) - m(3, 0), s11 = m(1, 1) - m(2, 1) - m(3, 1)
                        let s12 = m(1, 2) - m(2, 2) - m(3, 2), s13 = m(1, 3) - m(2, 3) - m(3, 3)
                        let y00 = s00 + s01 + s02, y01 = s01 - s02 - s03
                        let y10 = s10 + s11 + s12, y11 = s11 - s12 - s13
                        for l in 0..<k {
                            let col = 2 * (j + l)
                            row0[col] = y00[l]
                            if col + 1 < W { row0[col + 1] = y01[l] }
                            if i + 1 < H {
                                row0[W + col] = y10[l]
                                if col + 1 < W { row0[W + col + 1] = y11[l] }
                            }
                        }
                        j += 8
                    }
                }
            }
            tr0 += nr
        }
    }
}
