/// Winograd convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
/// CVPR 2016) for 3×3, stride-1, padding-1 layers with at least 16 input and output channels:
/// `Conv2D.forward` and the input-gradient path of `Conv2D.backward` use it whenever `applies`
/// holds; weight gradients stay on im2col. Two tile sizes (`tileSize`):
/// - F(4×4, 3×3) on images of at least `minimumTiles4` 4×4 tiles (vgg11's layers from 112×112 to
///   28×28): 36 products per 16 outputs, 4× fewer multiplications than the direct method;
/// - F(2×2, 3×3) on smaller images of at least `minimumTiles` 2×2 tiles (vgg11's 14×14 layers,
///   alexnet's 13×13 ones): 16 products per 4 outputs, 2.25× fewer.
/// Small images share GEMM blocks in groups of images (`groupSize`).
///
/// Each m×m output tile of one output channel is Aᵀ·[Σ_c (G·w[o,c]·Gᵀ) ⊙ (Bᵀ·d_c·B)]·A, where d_c
/// is the (m+2)×(m+2) input patch of channel c under the tile (zero outside the image). F(2×2):
///   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
///   Aᵀ = [1 1 1 0; 0 1 −1 −1].
/// F(4×4) (interpolation points 0, ±1, ±2, ∞):
///   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1],
///   G = diag(¼, −⅙, −⅙, 1/24, 1/24, 1)·[1 0 0; 1 1 1; 1 −1 1; 1 2 4; 1 −2 4; 0 0 1],
///   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1].
/// The sum over c for each of the (m+2)² transform positions ξ is one GEMM M_ξ (O, T) =
/// U_ξ (O, C) · V_ξ (C, T) over a block of T tiles (whole rows of tiles of one image), plus
/// transforms linear in C + O.
/// The transforms run on 8 tiles at a time: the padded image copy stores each row split by column
/// phase (even/odd for m = 2, the four residues mod 4 for m = 4), so every tile's columns are
/// contiguous vector loads.
///
/// Rounding (float32, unit u), besides the GEMM's sum of C terms:
/// - F(2×2): input transform 2, filter transform 4 (×½ is exact), product 1, output transform 4;
/// - F(4×4): input transform 4 (each 1-d pass is a depth-2 tree such as (d₄ − 4d₂) + (d₃ − 4d₁);
///   ×2, ×4 are exact), filter transform 6 (the integer rows in two depth-2 passes, then the
///   product with the float32-rounded scale s_a·s_b), product 1, output transform 6 (depth-3
///   passes such as ((m₁ − m₂) + 8(m₃ − m₄)) + m₅);
/// so |computed − exact| ≤ γ_{C+e} · |Aᵀ|·[Σ_c (|G|·|w|·|Gᵀ|) ⊙ (|Bᵀ|·|d|·|B|)]·|A| with e = 11
/// (F(2×2)) or 17 (F(4×4)), one more with the bias. That magnitude is larger than the direct
/// sum's Σ|w·x| (it mixes the weights and inputs of neighbouring taps; for F(4×4) by 20–130× on
/// random data); the tests bound Winograd layers with it. The observed F(4×4) error on a
/// 256-channel layer is ~1.5e-6 of Σ|w·x| at worst.
/// Results do not depend on the thread count: the tile size and blocks depend only on the layer's
/// sizes.
public enum Winograd {
    /// Smallest input and output channel counts for which the GEMMs over channels pay for the
    /// transforms (below it, e.g. an RGB input layer, im2col is faster).
    public static let minimumChannels = 16
    /// Smallest number of 2×2 tiles per image (⌈H/2⌉·⌈W/2⌉) for F(2×2, 3×3). Measured on 2 Zen 4
    /// cores, batch 16, with 4 images per GEMM block: alexnet's 13×13 layers (49 tiles) and
    /// vgg11's 14×14 ones ran 0–15 % faster than im2col (per-image blocks had been 0.5–0.7× of
    /// im2col on Zen 3: their 49-column GEMMs were too narrow).
    public static let minimumTiles = 49
    /// Smallest number of 4×4 tiles per image (⌈H/4⌉·⌈W/4⌉) for F(4×4, 3×3), which is preferred
    /// from there on. Measured on 2 Zen 4 cores, batch 16: vgg11's 28×28 layers (49 tiles) ran
    /// 1.4–1.5× faster by F(4×4) than by F(2×2); at 14×14 (16 tiles) F(4×4) was 1.4× slower than
    /// im2col.
    public static let minimumTiles4 = 49

    /// The output tile size m of the layer's Winograd algorithm F(m×m, 3×3): 4, 2, or nil when
    /// `Conv2D` does not use Winograd for it.
    @inlinable public static func tileSize(_ g: Conv2DGeometry) -> Int? {
        guard g.kernel == 3 && g.stride == 1 && g.padding == 1 &&
            g.inChannels >= minimumChannels && g.outChannels >= minimumChannels else { return nil }
        if ((g.height + 3) / 4) * ((g.width + 3) / 4) >= minimumTiles4 { return 4 }
        if ((g.height + 1) / 2) * ((g.width + 1) / 2) >= minimumTiles { return 2 }
        return nil
    }

    /// True when `Conv2D` computes this layer's forward and input gradient with Winograd.
    @inlinable public static func applies(_ g: Conv2DGeometry) -> Bool { tileSize(g) != nil }

    /// Floats of the transformed filters of a layer with `inChannels` × `outChannels` and output
    /// tile size `tile`: (tile + 2)²·C·O.
    @inlinable public static func filterCount(inChannels: Int, outChannels: Int, tile: Int) -> Int {
        (tile + 2) * (tile + 2) * inChannels * outChannels
    }

    /// Rows of tiles per GEMM block (of all `tileRows` rows of a group of images): the block's
    /// transformed inputs and products, (m+2)²·(C + O)·T floats, stay within about 4 MiB
    /// (cache-resident between the transform and the GEMM), with at least `blockTiles` tiles.
    @inlinable static func blockRows(cin: Int, cout: Int, tile: Int, tileRows: Int, tileCols: Int) -> Int {
        let tiles = max(blockTiles, (1 << 20) / ((tile + 2) * (tile + 2) * (cin + cout)))
        return min(tileRows, max(1, tiles / tileCols))
    }

    /// Images per GEMM block of a layer with output tile size `tile` on H × W images: 1 when an
    /// image has at least `blockTiles` tiles, else the largest power of two with at most that
    /// many tiles in all (alexnet's 13×13 and vgg11's 14×14 layers: 49 2×2 tiles, groups of 4; its
    /// 28×28 layers: 49 4×4 tiles, groups of 4). A power of two splits the usual batch sizes
    /// evenly over the threads; it depends only on the layer's sizes, so results do not depend on
    /// the thread count.
    @inlinable public static func groupSize(height: Int, width: Int, tile: Int) -> Int {
        let tiles = ((height + tile - 1) / tile) * ((width + tile - 1) / tile)
        var g = 1
        while 2 * g * tiles <= blockTiles { g *= 2 }
        return g
    }

    /// Tiles a GEMM block aims at (whole images, `groupSize`, below it): wide enough that
    /// OpenBLAS's packing of the transformed filters (once per GEMM call) costs little against
    /// the multiplications (measured on 2 Zen 4 cores: 49-tile blocks spent ~40 % of their time
    /// packing vgg11's 512 × 512 filters).
    public static let blockTiles = 256

    /// Scratch floats `convolve` needs for `images` images: their padded copies, one block's
    /// transformed inputs and products, and (F(4×4)) the 8-tile transform temporaries.
    public static func scratchCount(cin: Int, cout: Int, height: Int, width: Int, tile: Int, images: Int = 1) -> Int {
        let th = (height + tile - 1) / tile, tw = (width + tile - 1) / tile, a = tile + 2
        let n = blockRows(cin: cin, cout: cout, tile: tile, tileRows: images * th, tileCols: tw) * tw
        return images * cin * (tile * th + 2) * (tile * (tw + 1)) + a * a * (cin + cout) * n + (tile == 4 ? 48 * 8 : 0)
    }

    /// U_ξ = G·f·Gᵀ at position ξ = (m+2)·a + b for every filter pair of a layer with output tile
    /// size `tile` = m, written as U ((m+2)², rows, cols):
    /// - forward (`adjoint` false): rows = O, cols = C, f = w[o, c];
    /// - input gradient (`adjoint` true): rows = C, cols = O, f = w[o, c] rotated by 180°, the
    ///   filters of the transposed convolution ∂x = conv(δ, rot180(w)ᵀ, padding 1).
    /// Split over `threads` by output channel (each value computed by one thread).
    public static func transformFilters(_ w: UnsafePointer<Float>, outChannels O: Int, inChannels C: Int, tile: Int,
                                        adjoint: Bool, into U: UnsafeMutablePointer<Float>, threads: Int = 0) {
        precondition(tile == 2 || tile == 4, "Winograd.transformFilters: tile \(tile) (2 or 4)")
        if tile == 2 {
            transformFilters2(w, outChannels: O, inChannels: C, adjoint: adjoint, into: U, threads: threads)
        } else {
            transformFilters4(w, outChannels: O, inChannels: C, adjoint: adjoint, into: U, threads: threads)
        }
    }

    /// y (images, cout, H, W) = the 3×3, padding-1 cross-correlation of x (images, cin, H, W) with
    /// the filters transformed by `transformFilters` for the same `tile` (U: (tile+2)², cout,
    /// cin); y is overwritten, no bias. The images' tiles share the GEMM blocks (see `groupSize`).
    /// `scratch` holds `scratchCount(cin:cout:height:width:tile:images:)` floats.
    /// Single-threaded (callers split the batch; OpenBLAS runs single-threaded inside saat's
    /// worker threads).
    public static func convolve(_ x: UnsafePointer<Float>, images: Int, cin C: Int, cout O: Int, height H: Int,
                                width W: Int, tile: Int, filters U: UnsafePointer<Float>,
                                into y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        precondition(tile == 2 || tile == 4, "Winograd.convolve: tile \(tile) (2 or 4)")
        if tile == 2 {
            convolve2(x, images: images, cin: C, cout: O, height: H, width: W, filters: U, into: y, scratch: scratch)
        } else {
            convolve4(x, images: images, cin: C, cout: O, height: H, width: W, filters: U, into: y, scratch: scratch)
        }
    }

    // MARK: F(2×2, 3×3)

    static func transformFilters2(_ w: UnsafePointer<Float>, outChannels O: Int, inChannels C: Int,
                                  adjoint: Bool, into U: UnsafeMutablePointer<Float>, threads: Int) {
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

    static func convolve2(_ x: UnsafePointer<Float>, images: Int, cin C: Int, cout O: Int, height H: Int, width W: Int,
                          filters U: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>) {
        let TH = (H + 1) / 2, TW = (W + 1) / 2
        // Padded copy per image and channel: rows 0 … 2·TH + 1 (image row h at h + 1), each stored
        // as its TW + 1 even columns then its TW + 1 odd ones (image column w at padded column
        // w + 1); zeros elsewhere.
        let half = TW + 1, rowStride = 2 * half, padPlane = (2 * TH + 2) * rowStride
        let rows = blockRows(cin: C, cout: O, tile: 2, tileRows: images * TH, tileCols: TW)
        let pad = scratch, V = pad + images * C * padPlane, M = V + 16 * C * rows * TW
        Elementwise.fillZero(pad, count: images * C * padPlane)
        for ic in 0..<(images * C) {
            for h in 0..<H {
                let src = x + (ic * H + h) * W, even = pad + ic * padPlane + (h + 1) * rowStride, odd = even + half
                var w = 0
                while w + 1 < W { odd[w / 2] = src[w]; even[w / 2 + 1] = src[w + 1]; w += 2 }
                if w < W { odd[w / 2] = src[w] }
            }
        }
        // The images' tile rows (image i's row r is row i·TH + r) in blocks of `rows`.
        var tr0 = 0
        while tr0 < images * TH {
            let nr = min(rows, images * TH - tr0), n = nr * TW
            // V_ξ (C, n) = Bᵀ·d·B of each tile's 4×4 patch, 8 tiles at a time.
            let vs = C * n
            for c in 0..<C {
                for r in 0..<nr {
                    let img = (tr0 + r) / TH, tr = (tr0 + r) % TH
                    let top = pad + (img * C + c) * padPlane + 2 * tr * rowStride
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
                    let img = (tr0 + r) / TH, i = 2 * ((tr0 + r) % TH)
                    let row0 = y + ((img * O + o) * H + i) * W
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

    // MARK: F(4×4, 3×3)

    /// Ĝ·(a, b, c)ᵀ = (a, (a + c) + b, (a + c) − b, (a + 4c) + 2b, (a + 4c) − 2b, c), the integer
    /// rows of F(4×4)'s G (G = diag(s)·Ĝ): depth-2 sums, ×2 and ×4 exact.
    @inline(__always) static func gHat(_ a: Float, _ b: Float, _ c: Float) -> SIMD8<Float> {
        let ac = a + c, a4c = a + 4 * c, b2 = 2 * b
        return SIMD8(a, ac + b, ac - b, a4c + b2, a4c - b2, c, 0, 0)
    }

    /// The row scales s of F(4×4)'s G = diag(s)·Ĝ.
    static let gScale: [Double] = [1.0 / 4, -1.0 / 6, -1.0 / 6, 1.0 / 24, 1.0 / 24, 1]

    /// F(4×4): U_ξ = s_a·s_b·(Ĝ·f·Ĝᵀ)_ab at ξ = 6a + b, as U (36, rows, cols); the scale products
    /// s_a·s_b are rounded to float32 once.
    static func transformFilters4(_ w: UnsafePointer<Float>, outChannels O: Int, inChannels C: Int,
                                  adjoint: Bool, into U: UnsafeMutablePointer<Float>, threads: Int) {
        let plane = O * C
        var scale = [Float](repeating: 0, count: 36)
        for a in 0..<6 { for b in 0..<6 { scale[6 * a + b] = Float(gScale[a] * gScale[b]) } }
        scale.withUnsafeBufferPointer { sc in
            ParallelFor.split(count: O, threads: threads) { _, outs in
                for o in outs {
                    for c in 0..<C {
                        let src = w + (o * C + c) * 9
                        @inline(__always) func f(_ t: Int) -> Float { adjoint ? src[8 - t] : src[t] }
                        // Ĝ·f (6×3) column by column, then (Ĝ·f)·Ĝᵀ row by row.
                        let g0 = gHat(f(0), f(3), f(6)), g1 = gHat(f(1), f(4), f(7)), g2 = gHat(f(2), f(5), f(8))
                        let dst = adjoint ? c * O + o : o * C + c
                        for a in 0..<6 {
                            let row = gHat(g0[a], g1[a], g2[a])
                            for b in 0..<6 { U[(6 * a + b) * plane + dst] = row[b] * sc[6 * a + b] }
                        }
                    }
                }
            }
        }
    }

    /// Bᵀ·(d₀ … d₅) of F(4×4) on 8 lanes, written to p, p + stride, …, p + 5·stride: depth-2 trees
    /// (r₀ = 4(d₀ − d₂) + (d₄ − d₂), r₁,₂ = (d₄ − 4d₂) ± (d₃ − 4d₁), r₃,₄ = (d₄ − d₂) ± 2(d₃ − d₁),
    /// r₅ = 4(d₁ − d₃) + (d₅ − d₃)).
    @inline(__always) static func bt6(_ d0: V8, _ d1: V8, _ d2: V8, _ d3: V8, _ d4: V8, _ d5: V8,
                                      _ p: UnsafeMutablePointer<Float>, _ stride: Int, _ count: Int) {
        let p42 = d4 - 4 * d2, p31 = d3 - 4 * d1, e = d4 - d2, f = 2 * (d3 - d1)
        store(4 * (d0 - d2) + e, p, count)
        store(p42 + p31, p + stride, count)
        store(p42 - p31, p + 2 * stride, count)
        store(e + f, p + 3 * stride, count)
        store(e - f, p + 4 * stride, count)
        store(4 * (d1 - d3) + (d5 - d3), p + 5 * stride, count)
    }

    /// Aᵀ·(m₀ … m₅) of F(4×4) on 8 lanes, written to p, p + stride, p + 2·stride, p + 3·stride:
    /// (m₀ + (m₁ + m₂)) + (m₃ + m₄), (m₁ − m₂) + 2(m₃ − m₄), (m₁ + m₂) + 4(m₃ + m₄),
    /// ((m₁ − m₂) + 8(m₃ − m₄)) + m₅ (depth ≤ 3).
    @inline(__always) static func at6(_ m0: V8, _ m1: V8, _ m2: V8, _ m3: V8, _ m4: V8, _ m5: V8,
                                      _ p: UnsafeMutablePointer<Float>, _ stride: Int) {
        let s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4
        store((m0 + s12) + s34, p, 8)
        store(d12 + 2 * d34, p + stride, 8)
        store(s12 + 4 * s34, p + 2 * stride, 8)
        store((d12 + 8 * d34) + m5, p + 3 * stride, 8)
    }

    static func convolve4(_ x: UnsafePointer<Float>, images: Int, cin C: Int, cout O: Int, height H: Int, width W: Int,
                          filters U: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>) {
        let TH = (H + 3) / 4, TW = (W + 3) / 4
        // Padded copy per image and channel: rows 0 … 4·TH + 1 (image row h at h + 1), each stored as four phases of
        // TW + 1 values, phase p holding padded columns 4i + p (image column w at padded column
        // w + 1); zeros elsewhere. Tile j's six columns are then phase 0…3 at i = j and phase 0, 1
        // at i = j + 1.
        let ph = TW + 1, rowStride = 4 * ph, padPlane = (4 * TH + 2) * rowStride
        let rows = blockRows(cin: C, cout: O, tile: 4, tileRows: images * TH, tileCols: TW)
        let pad = scratch, V = pad + images * C * padPlane, M = V + 36 * C * rows * TW, tmp = M + 36 * O * rows * TW
        Elementwise.fillZero(pad, count: images * C * padPlane)
        for ic in 0..<(images * C) {
            for h in 0..<H {
                let src = x + (ic * H + h) * W, dst = pad + ic * padPlane + (h + 1) * rowStride
                for w in 0..<W { dst[((w + 1) & 3) * ph + (w + 1) >> 2] = src[w] }
            }
        }
        // The images' tile rows (image i's row r is row i·TH + r) in blocks of `rows`.
        var tr0 = 0
        while tr0 < images * TH {
            let nr = min(rows, images * TH - tr0), n = nr * TW
            // V_ξ (C, n) = Bᵀ·d·B of each tile's 6×6 patch, 8 tiles at a time: d·B row by row into
            // tmp (6 × 6 vectors), then Bᵀ· column by column into V.
            let vs = C * n
            for c in 0..<C {
                for r in 0..<nr {
                    let img = (tr0 + r) / TH, tr = (tr0 + r) % TH
                    let top = pad + (img * C + c) * padPlane + 4 * tr * rowStride
                    let out = V + c * n + r * TW
                    var j = 0
                    while j < TW {
                        let k = min(8, TW - j)
                        for a in 0..<6 {
                            let q = top + a * rowStride + j
                            bt6(load(q, k), load(q + ph, k), load(q + 2 * ph, k), load(q + 3 * ph, k),
                                load(q + 1, k), load(q + ph + 1, k), tmp + 48 * a, 8, 8)
                        }
                        for b in 0..<6 {
                            @inline(__always) func t(_ a: Int) -> V8 { load(tmp + 48 * a + 8 * b, 8) }
                            bt6(t(0), t(1), t(2), t(3), t(4), t(5), out + j + b * vs, 6 * vs, k)
                        }
                        j += 8
                    }
                }
            }
            // M_ξ (O, n) = U_ξ (O, C) · V_ξ (C, n).
            for xi in 0..<36 {
                BLAS.sgemm(m: O, n: n, k: C, a: U + xi * O * C, lda: C, b: V + xi * vs, ldb: n,
                           c: M + xi * O * n, ldc: n)
            }
            // y tile = Aᵀ·m·A, 8 tiles at a time: ·A along each row a of m into tmp (6 × 4
            // vectors), then Aᵀ· along the columns into tmp + 192 (4 rows × 4 columns of vectors),
            // then stored tile by tile.
            let ms = O * n, yt = tmp + 192
            for o in 0..<O {
                for r in 0..<nr {
                    let img = (tr0 + r) / TH, i = 4 * ((tr0 + r) % TH)
                    let src = M + o * n + r * TW
                    var j = 0
                    while j < TW {
                        let k = min(8, TW - j)
                        for a in 0..<6 {
                            @inline(__always) func m(_ b: Int) -> V8 { load(src + j + (6 * a + b) * ms, k) }
                            at6(m(0), m(1), m(2), m(3), m(4), m(5), tmp + 32 * a, 8)
                        }
                        for b in 0..<4 {
                            @inline(__always) func u(_ a: Int) -> V8 { load(tmp + 32 * a + 8 * b, 8) }
                            at6(u(0), u(1), u(2), u(3), u(4), u(5), yt + 8 * b, 32)
                        }
                        // yt[(4·ii + jj)·8 + l] = output (i + ii, 4(j + l) + jj).
                        let fullCols = 4 * (j + k) <= W
                        for ii in 0..<min(4, H - i) {
                            let row = y + ((img * O + o) * H + i + ii) * W + 4 * j, v = yt + 32 * ii
                            if fullCols {
                                for l in 0..<k {
                                    row[4 * l] = v[l]; row[4 * l + 1] = v[8 + l]
                                    row[4 * l + 2] = v[16 + l]; row[4 * l + 3] = v[24 + l]
                                }
                            } else {
                                for l in 0..<k { for jj in 0..<4 where 4 * (j + l) + jj < W { row[4 * l + jj] = v[8 * jj + l] } }
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
