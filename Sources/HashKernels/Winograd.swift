/// Winograd convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
/// CVPR 2016) for stride-1 layers with at least 16 input and output channels, 3×3 with padding 1
/// or 5×5 with padding 2: `Conv2D.forward` and the input-gradient path of `Conv2D.backward` use it
/// whenever `applies` holds; weight gradients stay on im2col. Three variants (`tileSize`):
/// - F(4×4, 3×3) on images of at least `minimumTiles4` 4×4 tiles (vgg11's layers from 112×112 to
///   28×28): 36 products per 16 outputs, 4× fewer multiplications than the direct method;
/// - F(2×2, 3×3) on smaller images of at least `minimumTiles` 2×2 tiles (vgg11's 14×14,
///   alexnet's 13×13 and cnn-small's 16×16 layers): 16 products per 4 outputs, 2.25× fewer;
/// - F(2×2, 5×5) for 5×5 layers on images of at least `minimumTiles` 2×2 tiles (alexnet's 27×27
///   layer): 36 products per 4 outputs, 2.8× fewer.
///
/// Each m×m output tile of one output channel is Aᵀ·[Σ_c (G·w[o,c]·Gᵀ) ⊙ (Bᵀ·d_c·B)]·A, where d_c
/// is the α×α input patch of channel c under the tile (α = m + r − 1; zero outside the image).
/// F(2×2, 3×3):
///   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
///   Aᵀ = [1 1 1 0; 0 1 −1 −1].
/// F(4×4) (interpolation points 0, ±1, ±2, ∞):
///   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1],
///   G = diag(¼, −⅙, −⅙, 1/24, 1/24, 1)·[1 0 0; 1 1 1; 1 −1 1; 1 2 4; 1 −2 4; 0 0 1],
///   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1].
/// F(2×2, 5×5) (the same points, so the same Bᵀ and scales):
///   G = diag(¼, −⅙, −⅙, 1/24, 1/24, 1)·[1 0 0 0 0; 1 1 1 1 1; 1 −1 1 −1 1; 1 2 4 8 16; 1 −2 4 −8 16; 0 0 0 0 1],
///   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 1].
/// The sum over c for each of the α² transform positions ξ is one product M_ξ (O, T) =
/// U_ξ (O, C) · V_ξ (C, T) over a block of T tiles (whole rows of tiles of one image), plus
/// transforms linear in C + O. The products are `PanelGemm`'s: the filter transform writes U_ξ
/// in its A-panel layout and the input transform writes V_ξ in its B-panel layout, a tile row of
/// TW tiles taking ⌈TW/8⌉·8 columns (`paddedTileCols`), so nothing is packed per call; every
/// value is one multiply-add chain over c in increasing order.
/// The transforms run on 8 tiles at a time: the padded image copy stores each row split by column
/// phase (even/odd for m = 2, the four residues mod 4 for m = 4), so every tile's columns are
/// contiguous vector loads.
///
/// Rounding (float32, unit u), besides the GEMM's sum of C terms:
/// - F(2×2, 3×3): input transform 2, filter transform 4 (×½ is exact), product 1 (0 when
///   `MultiplyAdd` is fused), output transform 4;
/// - F(4×4, 3×3): input transform 4 (each 1-d pass is a depth-2 tree such as (d₄ − 4d₂) + (d₃ − 4d₁);
///   ×2, ×4 are exact), filter transform 6 (the integer rows in two depth-2 passes, then the
///   product with the float32-rounded scale s_a·s_b), product 1, output transform 6 (depth-3
///   passes such as ((m₁ − m₂) + 8(m₃ − m₄)) + m₅);
/// - F(2×2, 5×5): input transform 4, filter transform 8 (depth-3 passes such as
///   ((a + c) + e) ± (b + d), then the scale), product 1, output transform 6;
/// so |computed − exact| ≤ γ_{C+e} · |Aᵀ|·[Σ_c (|G|·|w|·|Gᵀ|) ⊙ (|Bᵀ|·|d|·|B|)]·|A| with e = 11
/// (F(2×2, 3×3)), 17 (F(4×4, 3×3)) or 19 (F(2×2, 5×5)), one more with the bias. That magnitude is
/// larger than the direct sum's Σ|w·x| (it mixes the weights and inputs of neighbouring taps; for
/// F(4×4) and F(2×2, 5×5) by 20–130× on
/// random data); the tests bound Winograd layers with it. The observed F(4×4) error on a
/// 256-channel layer is ~1.5e-6 of Σ|w·x| at worst.
/// Results do not depend on the thread count or on the other images of the batch: each image is
/// convolved alone, and its tile size and blocks depend only on the layer's sizes.
public enum Winograd {
    /// Smallest input and output channel counts for which the GEMMs over channels pay for the
    /// transforms (below it, e.g. an RGB input layer, im2col is faster).
    public static let minimumChannels = 16
    /// Smallest number of 2×2 tiles per image (⌈H/2⌉·⌈W/2⌉) for F(2×2, 3×3) and F(2×2, 5×5).
    /// Measured on 2 Zen 4 cores, batch 16, with `PanelGemm` (no per-call packing): alexnet's 13×13
    /// layers (49 tiles) ran 1.3–1.6× faster than by im2col and vgg11's 14×14 ones 1.25–1.35×
    /// (with sgemm's packing per call they had run at 0.5–0.7× of im2col). Smaller images were
    /// not measured and stay on im2col. Images are never convolved together (see `blockTiles`).
    public static let minimumTiles = 49
    /// Smallest number of 4×4 tiles per image (⌈H/4⌉·⌈W/4⌉) for F(4×4, 3×3), which is preferred
    /// from there on. Measured on 2 Zen 4 cores, batch 16: vgg11's 28×28 layers (49 tiles) ran
    /// 1.4–1.5× faster by F(4×4) than by F(2×2), in one GEMM block per image; at 14×14 (16 tiles)
    /// F(4×4) was 1.4× slower than im2col.
    public static let minimumTiles4 = 49

    /// The output tile size m of the layer's Winograd algorithm F(m×m, r×r) (r = the layer's
    /// kernel): 4 or 2 for a 3×3, padding-1 layer, 2 for a 5×5, padding-2 one, nil when `Conv2D`
    /// does not use Winograd for it.
    @inlinable public static func tileSize(_ g: Conv2DGeometry) -> Int? {
        guard g.stride == 1 && g.inChannels >= minimumChannels && g.outChannels >= minimumChannels &&
            (g.kernel == 3 && g.padding == 1 || g.kernel == 5 && g.padding == 2) else { return nil }
        if g.kernel == 3 && ((g.height + 3) / 4) * ((g.width + 3) / 4) >= minimumTiles4 { return 4 }
        if ((g.height + 1) / 2) * ((g.width + 1) / 2) >= minimumTiles { return 2 }
        return nil
    }

    /// True when `Conv2D` computes this layer's forward and input gradient with Winograd.
    @inlinable public static func applies(_ g: Conv2DGeometry) -> Bool { tileSize(g) != nil }

    /// Floats of the transformed filters of a layer with `inChannels` × `outChannels`, output tile
    /// size `tile` and kernel size `kernel`, forward or adjoint: α² packed (rows × cols) matrices
    /// (`PanelGemm`'s A layout, rows rounded up to whole panels), α = tile + kernel − 1.
    @inlinable public static func filterCount(inChannels: Int, outChannels: Int, tile: Int, kernel: Int) -> Int {
        (tile + kernel - 1) * (tile + kernel - 1) * max(filterPlane(rows: outChannels, cols: inChannels),
                                                        filterPlane(rows: inChannels, cols: outChannels))
    }

    /// Floats of one transformed-filter matrix U_ξ (rows × cols) in `PanelGemm`'s A layout.
    @inlinable static func filterPlane(rows: Int, cols: Int) -> Int { PanelGemm.packedACount(rows: rows, depth: cols) }

    /// Tiles per tile row in the products' column order: an image row of TW tiles takes
    /// ⌈TW/8⌉·8 columns, so that the transforms' 8-tile vectors are whole, aligned vectors of
    /// `PanelGemm`'s B panels (the columns past TW are computed and never stored).
    @inlinable static func paddedTileCols(_ tw: Int) -> Int { (tw + 7) / 8 * 8 }

    /// Zeroes the rows past `rows` of the last panel of every U_ξ (`PanelGemm` reads them).
    static func zeroPanelPadding(_ U: UnsafeMutablePointer<Float>, positions: Int, rows: Int, cols: Int) {
        let plane = filterPlane(rows: rows, cols: cols)
        for xi in 0..<positions {
            for r in rows..<(rows + PanelGemm.panelRows - 1) / PanelGemm.panelRows * PanelGemm.panelRows {
                for k in 0..<cols { U[xi * plane + PanelGemm.aIndex(row: r, k: k, depth: cols)] = 0 }
            }
        }
    }

    /// Rows of tiles per GEMM block (of an image's `tileRows` rows of `tileCols` product columns):
    /// the block's transformed inputs and products, α²·(C + O)·T floats, stay within about 1 MiB
    /// (2¹⁸ floats: resident in L2 between the transform, the products and the output transform),
    /// with at least `blockTiles` columns.
    @inlinable static func blockRows(cin: Int, cout: Int, alpha: Int, tileRows: Int, tileCols: Int) -> Int {
        let tiles = max(blockTiles, (1 << 18) / (alpha * alpha * (cin + cout)))
        return min(tileRows, max(1, tiles / tileCols))
    }

    /// Fewest product columns of a GEMM block (an image's whole tiles when it has fewer), so that
    /// each transformed-filter panel is reused by several B panels. Measured on 2 Zen 4 cores,
    /// batch 16, against the 4 MiB / 256-tile blocks sgemm had needed: vgg11's 56×56 layers ran
    /// 1.15–1.25× faster, its 112×112 layer 1.15× and its 28×28 ones equally fast (one block per
    /// image either way); 32-column blocks made the 28×28 layers 1.1× slower. An image's blocks
    /// depend only on the layer's sizes, never on the other images of the batch (and `PanelGemm`'s
    /// values do not depend on their column): an image's result is the same bits whether it is
    /// convolved alone or in any batch.
    public static let blockTiles = 64

    /// Scratch floats `convolveImage` needs: the image's padded copy (m·TH + r − 1 rows
    /// of m·(TW + ⌈(r − 1)/m⌉) floats per channel), one block's transformed inputs (`PanelGemm`'s
    /// B layout) and products (α² × cout × n, n = the block's tile rows × `paddedTileCols`), and
    /// (α = 6) the 8-tile transform temporaries. The transforms always load and store 8 lanes
    /// (partial vectors cost a scalar insert per lane): lanes past a row's last tile read the
    /// following floats of the padded copy and fill the row's padding columns.
    public static func scratchCount(cin: Int, cout: Int, height: Int, width: Int, tile m: Int, kernel r: Int) -> Int {
        let th = (height + m - 1) / m, tw = (width + m - 1) / m, a = m + r - 1, twp = paddedTileCols(tw)
        let n = blockRows(cin: cin, cout: cout, alpha: a, tileRows: th, tileCols: twp) * twp
        return cin * (m * th + r - 1) * (m * (tw + (r + m - 2) / m)) + a * a * PanelGemm.packedBCount(depth: cin, cols: n)
            + a * a * cout * n + (a == 6 ? 48 * 8 : 0)
    }

    /// U_ξ = G·f·Gᵀ at position ξ = (m+2)·a + b for every filter pair of a layer with output tile
    /// size `tile` = m, written as (m+2)² matrices U_ξ (rows × cols) in `PanelGemm`'s A layout, each
    /// `filterPlane(rows:cols:)` floats (the rows past the last whole panel zero):
    /// - forward (`adjoint` false): rows = O, cols = C, f = w[o, c];
    /// - input gradient (`adjoint` true): rows = C, cols = O, f = w[o, c] rotated by 180°, the
    ///   filters of the transposed convolution ∂x = conv(δ, rot180(w)ᵀ, padding 1).
    /// Split over `threads` by row panel (each value computed by one thread, `forEachFilterPair`).
    public static func transformFilters(_ w: UnsafePointer<Float>, outChannels O: Int, inChannels C: Int, tile: Int,
                                        kernel: Int, adjoint: Bool, into U: UnsafeMutablePointer<Float>,
                                        threads: Int = 0) {
        switch (tile, kernel) {
        case (2, 3): transformFilters2(w, outChannels: O, inChannels: C, adjoint: adjoint, into: U, threads: threads)
        case (4, 3), (2, 5):
            transformFilters6(w, outChannels: O, inChannels: C, kernel: kernel, adjoint: adjoint, into: U, threads: threads)
        default: preconditionFailure("Winograd.transformFilters: F(\(tile)×\(tile), \(kernel)×\(kernel)) (F(2, 3), F(4, 3) or F(2, 5))")
        }
    }

    /// y (cout, H, W) = the r×r, padding-(r − 1)/2 cross-correlation (r = `kernel`) of x (cin, H, W)
    /// with the filters transformed by `transformFilters` for the same `tile` and `kernel` (U: α²
    /// packed cout × cin matrices); y is overwritten, no bias. `scratch` holds
    /// `scratchCount(cin:cout:height:width:tile:kernel:)` floats.
    /// Single-threaded (callers split the batch; the products are `PanelGemm`'s, in the caller's
    /// worker threads).
    public static func convolveImage(_ x: UnsafePointer<Float>, cin C: Int, cout O: Int, height H: Int,
                                     width W: Int, tile: Int, kernel: Int, filters U: UnsafePointer<Float>,
                                     into y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        switch (tile, kernel) {
        case (2, 3): convolveImage2(x, cin: C, cout: O, height: H, width: W, filters: U, into: y, scratch: scratch)
        case (4, 3), (2, 5):
            convolveImage6(x, cin: C, cout: O, height: H, width: W, tile: tile, filters: U, into: y, scratch: scratch)
        default: preconditionFailure("Winograd.convolveImage: F(\(tile)×\(tile), \(kernel)×\(kernel)) (F(2, 3), F(4, 3) or F(2, 5))")
        }
    }

    // MARK: F(2×2, 3×3)

    static func transformFilters2(_ w: UnsafePointer<Float>, outChannels O: Int, inChannels C: Int,
                                  adjoint: Bool, into U: UnsafeMutablePointer<Float>, threads: Int) {
        let rows = adjoint ? C : O, cols = adjoint ? O : C, plane = filterPlane(rows: rows, cols: cols)
        zeroPanelPadding(U, positions: 16, rows: rows, cols: cols)
        forEachFilterPair(rows: rows, cols: cols, adjoint: adjoint, threads: threads) { o, c, dst in
            let src = w + (o * C + c) * 9
            @inline(__always) func f(_ t: Int) -> Float { adjoint ? src[8 - t] : src[t] }
            // G·f (4×3): column v of f gives column v of G·f; then (G·f)·Gᵀ row by row.
            let g0 = gTimes(f(0), f(3), f(6)), g1 = gTimes(f(1), f(4), f(7)), g2 = gTimes(f(2), f(5), f(8))
            for r in 0..<4 {
                let row = gTimes(g0[r], g1[r], g2[r])
                for b in 0..<4 { U[(4 * r + b) * plane + dst] = row[b] }
            }
        }
    }

    /// Calls body(o, c, offset) for every filter pair (output channel o, input channel c) with
    /// the offset of its value in one packed U_ξ (rows × cols, `PanelGemm`'s A layout; rows = O and
    /// cols = C, or the reverse for the adjoint), in memory order: panel by panel (split over
    /// `threads`), then column, then the panel's rows, so that each of the α² planes is written as
    /// one sequential stream (each value by one thread, whatever the thread count).
    @inline(__always) static func forEachFilterPair(rows: Int, cols: Int, adjoint: Bool, threads: Int,
                                                    _ body: (Int, Int, Int) -> Void) {
        let R = PanelGemm.panelRows
        ParallelFor.split(count: (rows + R - 1) / R, threads: threads) { _, panels in
            for p in panels {
                for k in 0..<cols {
                    for lane in 0..<min(R, rows - p * R) {
                        let row = p * R + lane, dst = PanelGemm.aIndex(panel: p, lane: lane, k: k, depth: cols)
                        if adjoint { body(k, row, dst) } else { body(row, k, dst) }
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

    /// 8 lanes at p (the transforms always move whole vectors, see `scratchCount`).
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V8 {
        UnsafeRawPointer(p).loadUnaligned(as: V8.self)
    }

    @inline(__always) static func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
    }

    /// The four phases of a group of image columns w … (w ≡ 0 mod 4) of an F(4×4) padded row
    /// `dst` (phase stride `ph`, q = w/4): `l0`…`l3` hold the columns l ≡ 0 … 3 (mod 4); column
    /// w + l is padded column w + l + 1, phase (l + 1) mod 4 at index q + (l + 1)/4.
    @inline(__always) static func storePhases4<T: SIMD>(_ l0: T, _ l1: T, _ l2: T, _ l3: T,
                                                        _ dst: UnsafeMutablePointer<Float>, q: Int, ph: Int)
        where T.Scalar == Float {
        let raw = UnsafeMutableRawPointer(dst)
        raw.storeBytes(of: l3, toByteOffset: 4 * (q + 1), as: T.self)
        raw.storeBytes(of: l0, toByteOffset: 4 * (ph + q), as: T.self)
        raw.storeBytes(of: l1, toByteOffset: 4 * (2 * ph + q), as: T.self)
        raw.storeBytes(of: l2, toByteOffset: 4 * (3 * ph + q), as: T.self)
    }

    /// The first `count` (≤ 16) lanes of v at p: whole 8-lane halves, then single lanes.
    @inline(__always) static func storeRow(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 8 {
            store(v.lowHalf, p)
            if count == 16 { store(v.highHalf, p + 8); return }
            for l in 8..<count { p[l] = v[l] }
        } else {
            for l in 0..<count { p[l] = v[l] }
        }
    }

    static func convolveImage2(_ x: UnsafePointer<Float>, cin C: Int, cout O: Int, height H: Int, width W: Int,
                          filters U: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>) {
        let TH = (H + 1) / 2, TW = (W + 1) / 2
        // Padded copy per channel: rows 0 … 2·TH + 1 (image row h at h + 1), each stored
        // as its TW + 1 even columns then its TW + 1 odd ones (image column w at padded column
        // w + 1); zeros elsewhere.
        let half = TW + 1, rowStride = 2 * half, padPlane = (2 * TH + 2) * rowStride, TWp = paddedTileCols(TW)
        let rows = blockRows(cin: C, cout: O, alpha: 4, tileRows: TH, tileCols: TWp)
        let vs = PanelGemm.packedBCount(depth: C, cols: rows * TWp), uPlane = filterPlane(rows: O, cols: C)
        let pad = scratch, V = pad + C * padPlane, M = V + 16 * vs
        Elementwise.fillZero(pad, count: C * padPlane)
        for c in 0..<C {
            for h in 0..<H {
                let src = x + (c * H + h) * W, even = pad + c * padPlane + (h + 1) * rowStride, odd = even + half
                var w = 0
                while w + 16 <= W {
                    let v = UnsafeRawPointer(src + w).loadUnaligned(as: SIMD16<Float>.self)
                    store(v.evenHalf, odd + w / 2); store(v.oddHalf, even + w / 2 + 1)
                    w += 16
                }
                while w + 1 < W { odd[w / 2] = src[w]; even[w / 2 + 1] = src[w + 1]; w += 2 }
                if w < W { odd[w / 2] = src[w] }
            }
        }
        // Tile rows in blocks of `rows`.
        var tr0 = 0
        while tr0 < TH {
            let nr = min(rows, TH - tr0), n = nr * TWp
            // V_ξ (C, n) = Bᵀ·d·B of each tile's 4×4 patch, 8 tiles at a time (column r·TWp + j).
            for c in 0..<C {
                for r in 0..<nr {
                    let top = pad + c * padPlane + 2 * (tr0 + r) * rowStride
                    var j = 0
                    while j < TW {
                        let out = V + PanelGemm.bIndex(k: c, col: r * TWp + j, depth: C)
                        // Patch row k (padded row 2·ti + k): columns E[j], O[j], E[j+1], O[j+1]
                        // as a, c, b, d below, for 8 tiles j … j + 7.
                        let p0 = top + j, p1 = p0 + rowStride, p2 = p1 + rowStride, p3 = p2 + rowStride
                        // even columns at j and j + 1, odd columns at j and j + 1, for rows 0 … 3
                        let a0 = load(p0), b0 = load(p0 + 1), c0 = load(p0 + half), d0 = load(p0 + half + 1)
                        let a1 = load(p1), b1 = load(p1 + 1), c1 = load(p1 + half), d1 = load(p1 + half + 1)
                        let a2 = load(p2), b2 = load(p2 + 1), c2 = load(p2 + half), d2 = load(p2 + half + 1)
                        let a3 = load(p3), b3 = load(p3 + 1), c3 = load(p3 + half), d3 = load(p3 + half + 1)
                        // Bᵀ·d along the rows (d0 − d2, d1 + d2, d2 − d1, d1 − d3) gives row a of
                        // the transform; ·B along its columns (E, E⁺, O, O⁺) → E − E⁺, O + E⁺,
                        // E⁺ − O, O − O⁺ gives ξ = 4a + b.
                        @inline(__always) func cols(_ e: V8, _ e1: V8, _ o: V8, _ o1: V8, _ a: Int) {
                            let q = out + 4 * a * vs
                            store(e - e1, q)
                            store(o + e1, q + vs)
                            store(e1 - o, q + 2 * vs)
                            store(o - o1, q + 3 * vs)
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
                PanelGemm.multiply(a: U + xi * uPlane, rows: O, depth: C, b: V + xi * vs, cols: n, c: M + xi * O * n, ldc: n)
            }
            // y tile = Aᵀ·m·A: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3 over the rows a, then the same
            // over the columns b, 8 tiles at a time; stores interleave the tiles' two columns.
            let ms = O * n
            for o in 0..<O {
                for r in 0..<nr {
                    let i = 2 * (tr0 + r)
                    let row0 = y + (o * H + i) * W
                    let src = M + o * n + r * TWp
                    var j = 0
                    while j < TW {
                        @inline(__always) func m(_ a: Int, _ b: Int) -> V8 { load(src + j + (4 * a + b) * ms) }
                        let s00 = m(0, 0) + m(1, 0) + m(2, 0), s01 = m(0, 1) + m(1, 1) + m(2, 1)
                        let s02 = m(0, 2) + m(1, 2) + m(2, 2), s03 = m(0, 3) + m(1, 3) + m(2, 3)
                        let s10 = m(1, 0) - m(2, 0) - m(3, 0), s11 = m(1, 1) - m(2, 1) - m(3, 1)
                        let s12 = m(1, 2) - m(2, 2) - m(3, 2), s13 = m(1, 3) - m(2, 3) - m(3, 3)
                        let y00 = s00 + s01 + s02, y01 = s01 - s02 - s03
                        let y10 = s10 + s11 + s12, y11 = s11 - s12 - s13
                        // The tiles' two columns interleaved: output columns 2j … 2j + 15 of the
                        // tile's two rows, stored as whole vectors while they fit in the row.
                        var r0 = SIMD16<Float>(), r1 = SIMD16<Float>()
                        r0.evenHalf = y00; r0.oddHalf = y01; r1.evenHalf = y10; r1.oddHalf = y11
                        storeRow(r0, row0 + 2 * j, count: min(16, W - 2 * j))
                        if i + 1 < H { storeRow(r1, row0 + W + 2 * j, count: min(16, W - 2 * j)) }
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

    /// Bᵀ·(d₀ … d₅) of the α = 6 variants on 8 lanes, written to p, p + stride, …, p + 5·stride: depth-2 trees
    /// (r₀ = 4(d₀ − d₂) + (d₄ − d₂), r₁,₂ = (d₄ − 4d₂) ± (d₃ − 4d₁), r₃,₄ = (d₄ − d₂) ± 2(d₃ − d₁),
    /// r₅ = 4(d₁ − d₃) + (d₅ − d₃)).
    @inline(__always) static func bt6(_ d0: V8, _ d1: V8, _ d2: V8, _ d3: V8, _ d4: V8, _ d5: V8,
                                      _ p: UnsafeMutablePointer<Float>, _ stride: Int) {
        let p42 = d4 - 4 * d2, p31 = d3 - 4 * d1, e = d4 - d2, f = 2 * (d3 - d1)
        store(4 * (d0 - d2) + e, p)
        store(p42 + p31, p + stride)
        store(p42 - p31, p + 2 * stride)
        store(e + f, p + 3 * stride)
        store(e - f, p + 4 * stride)
        store(4 * (d1 - d3) + (d5 - d3), p + 5 * stride)
    }

    /// Aᵀ·(m₀ … m₅) of F(4×4) on 8 lanes, written to p, p + stride, p + 2·stride, p + 3·stride:
    /// (m₀ + (m₁ + m₂)) + (m₃ + m₄), (m₁ − m₂) + 2(m₃ − m₄), (m₁ + m₂) + 4(m₃ + m₄),
    /// ((m₁ − m₂) + 8(m₃ − m₄)) + m₅ (depth ≤ 3).
    @inline(__always) static func at6(_ m0: V8, _ m1: V8, _ m2: V8, _ m3: V8, _ m4: V8, _ m5: V8,
                                      _ p: UnsafeMutablePointer<Float>, _ stride: Int) {
        let s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4
        store((m0 + s12) + s34, p)
        store(d12 + 2 * d34, p + stride)
        store(s12 + 4 * s34, p + 2 * stride)
        store((d12 + 8 * d34) + m5, p + 3 * stride)
    }

    // MARK: F(2×2, 5×5)

    /// Ĝ₅·(a, b, c, d, e)ᵀ = (a, (a + c + e) ± (b + d), (a + 4c + 16e) ± (2b + 8d), e), the integer
    /// rows of F(2×2, 5×5)'s G = diag(s)·Ĝ₅ (the same points and scales s as F(4×4, 3×3)): depth-3
    /// sums, the powers of two exact.
    @inline(__always) static func gHat5(_ a: Float, _ b: Float, _ c: Float, _ d: Float, _ e: Float) -> SIMD8<Float> {
        let ace = (a + c) + e, bd = b + d, a4 = (a + 4 * c) + 16 * e, b2 = 2 * b + 8 * d
        return SIMD8(a, ace + bd, ace - bd, a4 + b2, a4 - b2, e, 0, 0)
    }

    /// The α = 6 variants (F(4×4, 3×3), r = 3, and F(2×2, 5×5), r = 5): U_ξ = s_a·s_b·(Ĝ·f·Ĝᵀ)_ab at
    /// ξ = 6a + b with Ĝ = `gHat` or `gHat5`, as U (36, rows, cols); the scale products s_a·s_b are
    /// rounded to float32 once.
    static func transformFilters6(_ w: UnsafePointer<Float>, outChannels O: Int, inChannels C: Int, kernel r: Int,
                                  adjoint: Bool, into U: UnsafeMutablePointer<Float>, threads: Int) {
        precondition(r == 3 || r == 5, "Winograd.transformFilters6: kernel \(r)")
        let rows = adjoint ? C : O, cols = adjoint ? O : C, plane = filterPlane(rows: rows, cols: cols), rr = r * r
        zeroPanelPadding(U, positions: 36, rows: rows, cols: cols)
        var scale = [Float](repeating: 0, count: 36)
        for a in 0..<6 { for b in 0..<6 { scale[6 * a + b] = Float(gScale[a] * gScale[b]) } }
        @inline(__always) func gHatR(_ v: (Int) -> Float) -> SIMD8<Float> {
            r == 3 ? gHat(v(0), v(1), v(2)) : gHat5(v(0), v(1), v(2), v(3), v(4))
        }
        scale.withUnsafeBufferPointer { sc in
            forEachFilterPair(rows: rows, cols: cols, adjoint: adjoint, threads: threads) { o, c, dst in
                let src = w + (o * C + c) * rr
                @inline(__always) func f(_ u: Int, _ v: Int) -> Float { adjoint ? src[rr - 1 - u * r - v] : src[u * r + v] }
                // Ĝ·f (6×r) column by column, then (Ĝ·f)·Ĝᵀ row by row.
                let g0 = gHatR { f($0, 0) }, g1 = gHatR { f($0, 1) }, g2 = gHatR { f($0, 2) }
                let g3 = r == 5 ? gHatR { f($0, 3) } : SIMD8(), g4 = r == 5 ? gHatR { f($0, 4) } : SIMD8()
                @inline(__always) func g(_ q: Int, _ a: Int) -> Float {
                    switch q { case 0: g0[a]; case 1: g1[a]; case 2: g2[a]; case 3: g3[a]; default: g4[a] }
                }
                for a in 0..<6 {
                    let row = gHatR { g($0, a) }
                    for b in 0..<6 { U[(6 * a + b) * plane + dst] = row[b] * sc[6 * a + b] }
                }
            }
        }
    }

    /// Aᵀ·(m₀ … m₅) of F(2×2, 5×5) on 8 lanes, written to p and p + stride:
    /// (m₀ + (m₁ + m₂)) + (m₃ + m₄) and ((m₁ − m₂) + 2(m₃ − m₄)) + m₅ (depth 3).
    @inline(__always) static func at62(_ m0: V8, _ m1: V8, _ m2: V8, _ m3: V8, _ m4: V8, _ m5: V8,
                                       _ p: UnsafeMutablePointer<Float>, _ stride: Int) {
        store((m0 + (m1 + m2)) + (m3 + m4), p)
        store(((m1 - m2) + 2 * (m3 - m4)) + m5, p + stride)
    }

    // MARK: the α = 6 variants: F(4×4, 3×3) and F(2×2, 5×5)

    /// y (cout, H, W) by F(m×m, r×r) with α = m + r − 1 = 6: m = 4, r = 3 or m = 2, r = 5 (the two
    /// share Bᵀ and the 6×6 patches; they differ in the tile stride m, the padding (r − 1)/2 and
    /// Aᵀ: `at6` or `at62`).
    static func convolveImage6(_ x: UnsafePointer<Float>, cin C: Int, cout O: Int, height H: Int, width W: Int,
                               tile m: Int, filters U: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                               scratch: UnsafeMutablePointer<Float>) {
        precondition(m == 4 || m == 2, "Winograd.convolveImage6: tile \(m)")
        let r = 7 - m, p = (r - 1) / 2
        let TH = (H + m - 1) / m, TW = (W + m - 1) / m
        // Padded copy per channel: rows 0 … m·TH + r − 2 (image row h at h + p), each stored as m
        // phases of `ph` values, phase q holding padded columns m·i + q (image column w at padded
        // column w + p); zeros elsewhere. Tile j's six columns m·j + q, q < 6, are then phase q mod m
        // at index j + q / m: contiguous over the tiles j.
        let ph = TW + (r + m - 2) / m, rowStride = m * ph, padPlane = (m * TH + r - 1) * rowStride
        let TWp = paddedTileCols(TW)
        let rows = blockRows(cin: C, cout: O, alpha: 6, tileRows: TH, tileCols: TWp)
        let vs = PanelGemm.packedBCount(depth: C, cols: rows * TWp), uPlane = filterPlane(rows: O, cols: C)
        let pad = scratch, V = pad + C * padPlane, M = V + 36 * vs, tmp = M + 36 * O * rows * TWp
        Elementwise.fillZero(pad, count: C * padPlane)
        let shift = m == 4 ? 2 : 1   // log2(m): no integer division per value
        for c in 0..<C {
            for h in 0..<H {
                let src = x + (c * H + h) * W, dst = pad + c * padPlane + (h + p) * rowStride
                var w = 0
                if m == 4 {
                    // p = 1: 32 columns at a time split into their 4 phases by even/odd lane
                    // shuffles (`storePhases4`), then one group of 16 and one of 8 (vgg11's 28
                    // and 56 px rows).
                    while w + 32 <= W {
                        let v = UnsafeRawPointer(src + w).loadUnaligned(as: SIMD32<Float>.self)
                        let e = v.evenHalf, o = v.oddHalf
                        storePhases4(e.evenHalf, o.evenHalf, e.oddHalf, o.oddHalf, dst, q: w / 4, ph: ph)
                        w += 32
                    }
                    if w + 16 <= W {
                        let v = UnsafeRawPointer(src + w).loadUnaligned(as: SIMD16<Float>.self)
                        let e = v.evenHalf, o = v.oddHalf
                        storePhases4(e.evenHalf, o.evenHalf, e.oddHalf, o.oddHalf, dst, q: w / 4, ph: ph)
                        w += 16
                    }
                    if w + 8 <= W {
                        let v = load(src + w), e = v.evenHalf, o = v.oddHalf
                        storePhases4(e.evenHalf, o.evenHalf, e.oddHalf, o.oddHalf, dst, q: w / 4, ph: ph)
                        w += 8
                    }
                } else {
                    // p = 2: image column w + l (w even) is padded column w + l + 2, phase l mod 2
                    // at index w/2 + 1 + l/2.
                    while w + 16 <= W {
                        let v = UnsafeRawPointer(src + w).loadUnaligned(as: SIMD16<Float>.self)
                        store(v.evenHalf, dst + w / 2 + 1)
                        store(v.oddHalf, dst + ph + w / 2 + 1)
                        w += 16
                    }
                }
                while w < W {
                    let t = w + p
                    dst[(t & (m - 1)) * ph + (t >> shift)] = src[w]
                    w += 1
                }
            }
        }
        // Where tile j's column q starts, relative to phase 0 at index j.
        let column = (0..<6).map { q in (q % m) * ph + q / m }
        let c0 = column[0], c1 = column[1], c2 = column[2], c3 = column[3], c4 = column[4], c5 = column[5]
        var tr0 = 0
        while tr0 < TH {
            let nr = min(rows, TH - tr0), n = nr * TWp
            // V_ξ (C, n) = Bᵀ·d·B of each tile's 6×6 patch, 8 tiles at a time (column tr·TWp + j):
            // d·B row by row into tmp (6 × 6 vectors), then Bᵀ· column by column into V.
            for c in 0..<C {
                for tr in 0..<nr {
                    let top = pad + c * padPlane + m * (tr0 + tr) * rowStride
                    var j = 0
                    while j < TW {
                        let out = V + PanelGemm.bIndex(k: c, col: tr * TWp + j, depth: C)
                        for a in 0..<6 {
                            let q = top + a * rowStride + j
                            bt6(load(q + c0), load(q + c1), load(q + c2), load(q + c3),
                                load(q + c4), load(q + c5), tmp + 48 * a, 8)
                        }
                        for b in 0..<6 {
                            @inline(__always) func t(_ a: Int) -> V8 { load(tmp + 48 * a + 8 * b) }
                            bt6(t(0), t(1), t(2), t(3), t(4), t(5), out + b * vs, 6 * vs)
                        }
                        j += 8
                    }
                }
            }
            // M_ξ (O, n) = U_ξ (O, C) · V_ξ (C, n).
            for xi in 0..<36 {
                PanelGemm.multiply(a: U + xi * uPlane, rows: O, depth: C, b: V + xi * vs, cols: n, c: M + xi * O * n, ldc: n)
            }
            // y tile = Aᵀ·m·A (m×m), 8 tiles at a time: ·A along each row a of m into tmp (6 × m
            // vectors), then Aᵀ· along the columns into yt (m rows × m columns of vectors), then
            // stored row by row: yt[(m·ii + jj)·8 + l] = output (i + ii, m(j + l) + jj).
            let row8 = 8 * m, ms = O * n, yt = tmp + 6 * row8
            for o in 0..<O {
                for tr in 0..<nr {
                    let i = m * (tr0 + tr)
                    let src = M + o * n + tr * TWp
                    var j = 0
                    while j < TW {
                        for a in 0..<6 {
                            @inline(__always) func v(_ b: Int) -> V8 { load(src + j + (6 * a + b) * ms) }
                            if m == 4 {
                                at6(v(0), v(1), v(2), v(3), v(4), v(5), tmp + row8 * a, 8)
                            } else {
                                at62(v(0), v(1), v(2), v(3), v(4), v(5), tmp + row8 * a, 8)
                            }
                        }
                        for b in 0..<m {
                            @inline(__always) func u(_ a: Int) -> V8 { load(tmp + row8 * a + 8 * b) }
                            if m == 4 {
                                at6(u(0), u(1), u(2), u(3), u(4), u(5), yt + 8 * b, row8)
                            } else {
                                at62(u(0), u(1), u(2), u(3), u(4), u(5), yt + 8 * b, row8)
                            }
                        }
                        // Output row i + ii, columns m·j …: lane l of vector jj is column m·(j + l) + jj,
                        // so the m vectors are interleaved (twice for m = 4) and stored while they fit.
                        let count = min(8 * m, W - m * j)
                        for ii in 0..<min(m, H - i) {
                            let row = y + (o * H + i + ii) * W + m * j, v = UnsafePointer(yt + row8 * ii)
                            var a = SIMD16<Float>()
                            a.evenHalf = load(v); a.oddHalf = load(v + 8 * (m == 4 ? 2 : 1))
                            if m == 2 {
                                storeRow(a, row, count: count)
                            } else {
                                var b = SIMD16<Float>(), r = SIMD32<Float>()
                                b.evenHalf = load(v + 8); b.oddHalf = load(v + 24)
                                r.evenHalf = a; r.oddHalf = b
                                storeRow(r.lowHalf, row, count: min(16, count))
                                if count > 16 { storeRow(r.highHalf, row + 16, count: count - 16) }
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
