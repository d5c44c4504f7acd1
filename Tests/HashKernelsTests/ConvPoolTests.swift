import XCTest
import NumericBounds
@testable import HashKernels

/// Conv / max-pool / elementwise kernels against naive direct loops (computed in Double), within
/// the float32 bound γ_n·Σ|terms| of every value (NumericBounds): n = C·k² + 1 for the forward
/// (bias included), O·k² + 1 for ∂x, N·(OH·OW + 1) + 1 for ∂w and ∂b (per-image GEMMs into per-part
/// sums, then the parts, then the += into the caller's buffer). Layers that `Winograd.applies` to
/// compute the forward and ∂x by Winograd F(m×m, 3×3): their bound is γ_{C + e + 1} (γ_{O + e} for
/// ∂x, e = winogradExtraRoundings(tile: m, kernel: k)) times the Winograd magnitude
/// (NumericBounds.winogradMagnitude) plus |b|.
final class ConvPoolTests: XCTestCase {
    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in rng.uniform(-1, 1) }
    }

    /// Direct 7-loop convolution: y[n,o,i,j] = b[o] + Σ_{c,u,v} w[o,c,u,v]·x[n,c,i·s−p+u,j·s−p+v],
    /// with the bound γ_{C·k²+1}·(|b| + Σ|w·x|) of a float32 evaluation.
    private func naiveConv(_ x: [Float], _ w: [Float], _ b: [Float], _ g: Conv2DGeometry) -> (y: [Double], bound: [Double]) {
        let C = g.inChannels, H = g.height, W = g.width, O = g.outChannels, k = g.kernel
        var y = [Double](repeating: 0, count: g.outputCount), bound = y
        for n in 0..<g.batch {
            for o in 0..<O {
                for i in 0..<g.outHeight {
                    for j in 0..<g.outWidth {
                        var s = BoundedSum(Double(b[o]))
                        for c in 0..<C {
                            for u in 0..<k {
                                for v in 0..<k {
                                    let h = i * g.stride - g.padding + u, ww = j * g.stride - g.padding + v
                                    if h < 0 || h >= H || ww < 0 || ww >= W { continue }
                                    s.add(Double(w[((o * C + c) * k + u) * k + v]), Double(x[((n * C + c) * H + h) * W + ww]))
                                }
                            }
                        }
                        let yi = ((n * O + o) * g.outHeight + i) * g.outWidth + j
                        y[yi] = s.value
                        bound[yi] = s.bound(terms: C * k * k + 1)
                    }
                }
            }
        }
        if let m = Winograd.tileSize(g) {
            bound = winogradConvBounds(x: x, w: w, b: b, dy: nil, batch: g.batch, inChannels: C, outChannels: O,
                                       height: H, width: W, tile: m, kernel: k).y
        }
        return (y, bound)
    }

    /// Direct adjoints ∂x, ∂w, ∂b of ⟨y, δ⟩ (added to `w0`/`b0`), with float32 bounds.
    private func naiveConvBackward(_ x: [Float], _ w: [Float], _ dy: [Float], _ g: Conv2DGeometry,
                                   w0: [Float]? = nil, b0: [Float]? = nil)
        -> (dx: [Double], dxBound: [Double], dw: [Double], dwBound: [Double], db: [Double], dbBound: [Double]) {
        let C = g.inChannels, H = g.height, W = g.width, O = g.outChannels, k = g.kernel
        var dx = [BoundedSum](repeating: BoundedSum(), count: g.inputCount)
        var dw = (w0 ?? [Float](repeating: 0, count: g.weightCount)).map { BoundedSum(Double($0)) }
        var db = (b0 ?? [Float](repeating: 0, count: O)).map { BoundedSum(Double($0)) }
        for n in 0..<g.batch { for o in 0..<O { for i in 0..<g.outHeight { for j in 0..<g.outWidth {
            let d = Double(dy[((n * O + o) * g.outHeight + i) * g.outWidth + j])
            db[o].add(d)
            for c in 0..<C { for u in 0..<k { for v in 0..<k {
                let h = i * g.stride - g.padding + u, ww = j * g.stride - g.padding + v
                if h < 0 || h >= H || ww < 0 || ww >= W { continue }
                let xi = ((n * C + c) * H + h) * W + ww, wi = ((o * C + c) * k + u) * k + v
                dx[xi].add(Double(w[wi]), d)
                dw[wi].add(Double(x[xi]), d)
            } } }
        } } } }
        let nx = O * k * k + 1, nw = g.batch * (g.outPlane + 1) + 1
        var dxBound = dx.map { $0.bound(terms: nx) }
        if let m = Winograd.tileSize(g) {   // ∂x = conv(δ, rot180(w)ᵀ) from O channels to C, by Winograd
            dxBound = winogradConvBounds(x: x, w: w, b: [Float](repeating: 0, count: O), dy: dy, batch: g.batch,
                                         inChannels: C, outChannels: O, height: H, width: W, tile: m, kernel: k).dx!
        }
        return (dx.map(\.value), dxBound, dw.map(\.value), dw.map { $0.bound(terms: nw) },
                db.map(\.value), db.map { $0.bound(terms: nw) })
    }

    /// (N, C, H, W, O, k, s, p, threads): includes non-square inputs, k=1, kernel = padded
    /// input, stride larger than the kernel, and thread counts that split the batch into parts
    /// with a remainder (0 = `ParallelFor.computeThreads`).
    private let geometries: [(Int, Int, Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 3, 7, 7, 4, 3, 1, 0, 0),
        (2, 3, 7, 7, 4, 3, 2, 1, 0),
        (2, 3, 7, 6, 5, 5, 1, 1, 0),
        (3, 2, 9, 8, 3, 5, 2, 2, 0),
        (5, 3, 7, 7, 4, 3, 1, 1, 3),                 // parts of 2, 2, 1 images
        (5, 2, 6, 9, 3, 3, 3, 0, 1),                  // one thread
        (2, 4, 5, 5, 6, 1, 1, 0, 0),
        (2, 2, 3, 4, 3, 5, 1, 1, 0),  // kernel == padded height
        (1, 1, 4, 4, 1, 2, 4, 1, 0),  // stride > kernel
        // Winograd F(2×2, 3×3) layers (≥ 16 channels, ≥ 49 2×2 tiles per image, fewer than 49 4×4
        // ones): even and odd sizes (a last tile cut in half), channel counts at and off the
        // minimum, batch splits with a remainder, exactly 49 tiles (alexnet's 13×13, 7 of 8 columns
        // of each tile row's vector used) and 14×14 (vgg11's); then the im2col side of each threshold.
        (3, 16, 20, 20, 16, 3, 1, 1, 2),
        (1, 16, 24, 22, 17, 3, 1, 1, 0),
        (3, 17, 21, 19, 20, 3, 1, 1, 2),
        (2, 24, 19, 21, 16, 3, 1, 1, 3),
        (2, 16, 18, 19, 16, 3, 1, 1, 0),              // 90 tiles
        (3, 16, 13, 13, 18, 3, 1, 1, 2),              // 49 tiles
        (2, 20, 14, 14, 16, 3, 1, 1, 0),
        (2, 16, 12, 15, 16, 3, 1, 1, 0),              // 48 tiles: im2col
        (2, 15, 20, 20, 16, 3, 1, 1, 0),              // one channel short: im2col
        // Winograd F(4×4, 3×3) layers (≥ 49 4×4 tiles): exactly 49 tiles, 10 tiles per row (two
        // lanes past an 8-tile group), last tiles cut to 3 rows / 1 column, rows of exactly 16
        // tiles, batch splits with a remainder; then 42 4×4 tiles (F(2×2) again).
        (2, 16, 28, 28, 16, 3, 1, 1, 0),
        (2, 16, 40, 40, 16, 3, 1, 1, 0),
        (3, 17, 43, 41, 20, 3, 1, 1, 2),
        (1, 16, 28, 64, 18, 3, 1, 1, 0),
        (2, 16, 24, 28, 16, 3, 1, 1, 0),              // 6 × 7 4×4 tiles: F(2×2)
        // Winograd F(2×2, 5×5) layers (5×5, padding 2, ≥ 49 2×2 tiles): 100 tiles, odd sizes with
        // batch splits, alexnet's 27×27, exactly 49 tiles; then 48 tiles (im2col).
        (2, 16, 20, 20, 16, 5, 1, 2, 0),
        (3, 17, 21, 19, 20, 5, 1, 2, 2),
        (1, 16, 27, 27, 24, 5, 1, 2, 0),
        (2, 16, 13, 14, 16, 5, 1, 2, 0),              // 49 2×2 tiles
        (2, 16, 12, 15, 16, 5, 1, 2, 0),              // 48 2×2 tiles: im2col
        // im2col in several slabs of output rows (`Conv2D.slabRows`), the last one shorter:
        // alexnet's 11×11/4 kind (2 slabs of 12 and 11 rows) and a wide 3×3 image (14 slabs of 3, 1).
        (2, 3, 99, 99, 8, 11, 4, 2, 0),
        (1, 8, 40, 300, 4, 3, 1, 1, 0),
    ]

    func testConvForwardMatchesNaive() {
        for (t, (n, c, h, w, o, k, s, p, threads)) in geometries.enumerated() {
            let g = Conv2DGeometry(batch: n, inChannels: c, height: h, width: w, outChannels: o, kernel: k, stride: s, padding: p)
            let x = random(g.inputCount, seed: UInt64(t)), wt = random(g.weightCount, seed: UInt64(t + 50))
            let b = random(o, seed: UInt64(t + 90))
            var y = [Float](repeating: .nan, count: g.outputCount)
            Conv2D.forward(x: x, weight: wt, bias: b, y: &y, geometry: g, threads: threads)
            let ref = naiveConv(x, wt, b, g)
            assertWithinBounds(y, ref.y, ref.bound, "forward geometry \(t)")
            // Without bias.
            var y0 = [Float](repeating: .nan, count: g.outputCount)
            Conv2D.forward(x: x, weight: wt, bias: nil, y: &y0, geometry: g, threads: threads)
            let ref0 = naiveConv(x, wt, [Float](repeating: 0, count: o), g)
            assertWithinBounds(y0, ref0.y, ref0.bound, "forward no bias \(t)")
        }
    }

    func testConvBackwardMatchesNaiveAndAccumulates() {
        for (t, (n, c, h, w, o, k, s, p, threads)) in geometries.enumerated() {
            let g = Conv2DGeometry(batch: n, inChannels: c, height: h, width: w, outChannels: o, kernel: k, stride: s, padding: p)
            let x = random(g.inputCount, seed: UInt64(t)), wt = random(g.weightCount, seed: UInt64(t + 50))
            let dy = random(g.outputCount, seed: UInt64(t + 70))
            // Parameter grads start non-zero: the kernel must add to them.
            let w0 = random(g.weightCount, seed: 999), b0 = random(o, seed: 998)
            let ref = naiveConvBackward(x, wt, dy, g, w0: w0, b0: b0)
            var dx = [Float](repeating: .nan, count: g.inputCount), dw = w0, db = b0
            Conv2D.backward(x: x, weight: wt, dy: dy, geometry: g, dx: &dx, dWeight: &dw, dBias: &db, threads: threads)
            assertWithinBounds(dx, ref.dx, ref.dxBound, "dx geometry \(t)")
            assertWithinBounds(dw, ref.dw, ref.dwBound, "dw (+=) geometry \(t)")
            assertWithinBounds(db, ref.db, ref.dbBound, "db (+=) geometry \(t)")
            // Input-gradient path alone: same ∂x, parameters untouched.
            var dx2 = [Float](repeating: .nan, count: g.inputCount)
            Conv2D.backward(x: nil, weight: wt, dy: dy, geometry: g, dx: &dx2, dWeight: nil, dBias: nil, threads: threads)
            XCTAssertEqual(dx2, dx, "input-only path geometry \(t)")
            // Parameter path alone (no dx).
            let ref2 = naiveConvBackward(x, wt, dy, g)
            var dw2 = [Float](repeating: 0, count: g.weightCount), db2 = [Float](repeating: 0, count: o)
            Conv2D.backward(x: x, weight: wt, dy: dy, geometry: g, dx: nil, dWeight: &dw2, dBias: &db2, threads: threads)
            assertWithinBounds(dw2, ref2.dw, ref2.dwBound, "dw alone geometry \(t)")
            assertWithinBounds(db2, ref2.db, ref2.dbBound, "db alone geometry \(t)")
        }
    }

    func testIm2colIsAdjointOfCol2im() {
        // ⟨im2col(x), z⟩ = ⟨x, col2im(z)⟩ for any x, z.
        let g = Conv2DGeometry(batch: 2, inChannels: 3, height: 7, width: 6, outChannels: 1, kernel: 3, stride: 2, padding: 1)
        let rows = g.patchSize, cols = 2 * g.outPlane
        let x = random(g.inputCount, seed: 1), z = random(rows * cols, seed: 2)
        var colsBuf = [Float](repeating: .nan, count: rows * cols)
        Conv2D.im2col(x, g, first: 0, count: 2, cols: &colsBuf)
        var back = [Float](repeating: 0, count: g.inputCount)
        Conv2D.col2im(z, g, first: 0, count: 2, into: &back)
        // im2col only copies (exact); col2im adds ≤ k² values per pixel (float32, γ_{k²}·Σ|z|), so
        // the two float64 inner products differ by at most Σ|x|·γ_{k²}·(Σ|z| over the pixel's taps).
        var lhs = 0.0, rhs = 0.0, mag = 0.0
        for (a, b) in zip(colsBuf, z) { lhs += Double(a) * Double(b); mag += abs(Double(a) * Double(b)) }
        for (a, b) in zip(x, back) { rhs += Double(a) * Double(b) }
        XCTAssertLessThanOrEqual(abs(lhs - rhs), gamma(g.kernel * g.kernel) * mag * boundSlack + gamma(rows * cols, u: Rounding.float64) * mag * 2)
        XCTAssertFalse(colsBuf.contains { $0.isNaN }, "im2col writes every entry")
    }

    // MARK: max-pool

    private func naivePool(_ x: [Float], _ g: Pool2DGeometry) -> (y: [Float], idx: [Int32]) {
        var y = [Float](), idx = [Int32]()
        for pl in 0..<g.planes { for i in 0..<g.outHeight { for j in 0..<g.outWidth {
            var best = -Float.infinity, at = -1
            for u in 0..<g.kernel { for v in 0..<g.kernel {
                let h = i * g.stride + u, w = j * g.stride + v
                let val = x[pl * g.height * g.width + h * g.width + w]
                if at < 0 || val > best { best = val; at = h * g.width + w }   // strict >: first max wins
            } }
            y.append(best); idx.append(Int32(at))
        } } }
        return (y, idx)
    }

    func testMaxPoolMatchesNaiveWithTies() {
        // 3×3/2 rows of 27 and 13 outputs (alexnet's 55 and 27 px: 8-output blocks, then one
        // block overlapping the previous one), exactly 8 outputs (W 17, 18), 9 outputs.
        let shapes = [(2, 2, 7, 7), (3, 2, 7, 8), (3, 1, 5, 5), (2, 3, 8, 7), (1, 1, 3, 3),
                      (3, 2, 5, 55), (3, 2, 7, 27), (3, 2, 5, 17), (3, 2, 3, 18), (3, 2, 5, 19)]
        for (t, (k, s, h, w)) in shapes.enumerated() {
            let g = Pool2DGeometry(batch: 2, channels: 3, height: h, width: w, kernel: k, stride: s)
            // Values from a 4-level grid: many ties inside windows.
            var rng = SeededRNG(seed: UInt64(t))
            let x = (0..<g.inputCount).map { _ in Float(rng.below(4)) }
            var y = [Float](repeating: .nan, count: g.outputCount), idx = [Int32](repeating: -1, count: g.outputCount)
            MaxPool2D.forward(x: x, y: &y, argmax: &idx, geometry: g)
            let ref = naivePool(x, g)
            XCTAssertEqual(y, ref.y, "pool values \(t)")
            XCTAssertEqual(idx, ref.idx, "argmax (first max wins) \(t)")
            // Backward: scatter-add into argmax, overlapping windows add up.
            let dy = random(g.outputCount, seed: UInt64(t + 10))
            var dx = [Float](repeating: .nan, count: g.inputCount)
            MaxPool2D.backward(dy: dy, argmax: idx, dx: &dx, geometry: g)
            var refDx = [Double](repeating: 0, count: g.inputCount)
            for pl in 0..<g.planes { for o in 0..<(g.outHeight * g.outWidth) {
                refDx[pl * h * w + Int(ref.idx[pl * g.outHeight * g.outWidth + o])] += Double(dy[pl * g.outHeight * g.outWidth + o])
            } }
            // Overlapping windows add several values at one pixel: γ_{m−1}·Σ|values| for m of them.
            var terms = [Int](repeating: 0, count: g.inputCount), mag = [Double](repeating: 0, count: g.inputCount)
            for pl in 0..<g.planes { for o in 0..<(g.outHeight * g.outWidth) {
                let at = pl * h * w + Int(ref.idx[pl * g.outHeight * g.outWidth + o])
                terms[at] += 1; mag[at] += abs(Double(dy[pl * g.outHeight * g.outWidth + o]))
            } }
            assertWithinBounds(dx, refDx, zip(terms, mag).map { gamma(max($0 - 1, 0)) * $1 }, "pool backward \(t)")
        }
    }

    /// NaNs in the 3×3/2 vector blocks (the main ones and the overlapping last one): the scalar
    /// scan's rule, a NaN is taken whenever met (so a window's last NaN is its argmax).
    func testMaxPool3x3NaNInVectorBlocks() {
        let g = Pool2DGeometry(batch: 1, channels: 2, height: 5, width: 27, kernel: 3, stride: 2)
        var x = random(g.inputCount, seed: 77)
        for at in [3, 27 + 20, 2 * 27 + 25, 135 + 4 * 27 + 9, 135 + 10, 135 + 11] { x[at] = .nan }
        var y = [Float](repeating: 0, count: g.outputCount), idx = [Int32](repeating: -1, count: g.outputCount)
        MaxPool2D.forward(x: x, y: &y, argmax: &idx, geometry: g)
        var o = 0
        for pl in 0..<g.planes { for i in 0..<g.outHeight { for j in 0..<g.outWidth {
            var best = -Float.infinity, at = 2 * i * g.width + 2 * j
            for u in 0..<3 { for v in 0..<3 {
                let q = (2 * i + u) * g.width + 2 * j + v, val = x[pl * g.height * g.width + q]
                if val > best || val.isNaN { best = val; at = q }
            } }
            XCTAssertEqual(y[o].bitPattern, best.bitPattern, "pool value (\(pl), \(i), \(j))")
            XCTAssertEqual(idx[o], Int32(at), "pool argmax (\(pl), \(i), \(j))")
            o += 1
        } } }
    }

    func testMaxPoolExplicitTieAndNaN() {
        let g = Pool2DGeometry(batch: 1, channels: 1, height: 2, width: 4, kernel: 2, stride: 2)
        // Window 0: [1, 3; 3, 0] → first 3 at (0,1). Window 1: [2, nan; 5, 1] → NaN at (0,3).
        let x: [Float] = [1, 3, 2, .nan, 3, 0, 5, 1]
        var y = [Float](repeating: 0, count: 2), idx = [Int32](repeating: 0, count: 2)
        MaxPool2D.forward(x: x, y: &y, argmax: &idx, geometry: g)
        XCTAssertEqual(y[0], 3)
        XCTAssertTrue(y[1].isNaN)
        XCTAssertEqual(idx, [1, 3])
    }

    // MARK: elementwise

    func testElementwiseKernels() {
        for n in [0, 1, 15, 16, 17, 33, 100] {
            var x = random(n, seed: UInt64(n))
            if n > 3 { x[2] = 0; x[3] = .nan }
            var y = [Float](repeating: 7, count: n)
            Elementwise.relu(x, into: &y, count: n)
            for i in 0..<n {
                if x[i].isNaN { XCTAssertTrue(y[i].isNaN) } else { XCTAssertEqual(y[i], max(x[i], 0)) }
            }
            let dy = random(n, seed: UInt64(n + 1))
            var dx = [Float](repeating: 7, count: n)
            Elementwise.reluBackward(output: y, dy, into: &dx, count: n)
            for i in 0..<n { XCTAssertEqual(dx[i], y[i] <= 0 ? 0 : dy[i], "relu backward \(i)") }
            let s = Elementwise.sum(dy, count: n)
            XCTAssertLessThanOrEqual(abs(Double(s) - dy.reduce(0.0) { $0 + Double($1) }),
                                     gamma(n) * dy.reduce(0.0) { $0 + abs(Double($1)) } * boundSlack, "sum of \(n)")
            var z = [Float](repeating: 0, count: n)
            Elementwise.multiply(dy, dy, into: &z, count: n)
            XCTAssertEqual(z, dy.map { $0 * $0 })
            Elementwise.addScalar(dy, 0.5, into: &z, count: n)
            XCTAssertEqual(z, dy.map { $0 + 0.5 })
        }
        // Column sums on a (3, 19) matrix, added to a non-zero start.
        let m = random(3 * 19, seed: 5)
        var cs = [Float](repeating: 1, count: 19)
        Elementwise.accumulateColumnSums(m, rows: 3, cols: 19, into: &cs)
        for j in 0..<19 {
            let exact = 1 + Double(m[j]) + Double(m[19 + j]) + Double(m[38 + j])
            let mag = 1 + abs(Double(m[j])) + abs(Double(m[19 + j])) + abs(Double(m[38 + j]))
            XCTAssertLessThanOrEqual(abs(Double(cs[j]) - exact), gamma(3) * mag * boundSlack, "column \(j)")
        }
    }
}
