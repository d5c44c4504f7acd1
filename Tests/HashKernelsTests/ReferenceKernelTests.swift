import XCTest
import NumericBounds
import CBLAS
@testable import HashKernels

/// The optimised kernels (im2col + sgemm convolution, SIMD/branch-free max-pool) against
/// straightforward reference loops, at the stride/padding variants the backbones use
/// (cnn-small and vgg11: 3×3 pad 1 stride 1 and 2×2/2 pools; alexnet: 11×11 stride 4 pad 2,
/// 5×5 pad 2, 3×3 pad 1 and 3×3/2 pools), with channel counts and image sizes scaled down except
/// where a layer's sizes decide its algorithm (Winograd for 3×3 and 5×5 layers from 16 channels:
/// F(4×4, 3×3) from 49 4×4 tiles per image, F(2×2, 3×3) and F(2×2, 5×5) from 49 2×2 tiles).
/// Agreement: every value within the float32 bound γ_n·Σ|terms| of its Double reference
/// (NumericBounds), for 1, 2 and 3 threads; the fused conv → ReLU → pool epilogue and prologue
/// equal the unfused kernels bit for bit.
final class ReferenceKernelTests: XCTestCase {
    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in rng.uniform(-1, 1) }
    }

    /// y[n,o,i,j] = b[o] + Σ w[o,c,u,v]·x[n,c,i·s−p+u,j·s−p+v], and the three adjoints, each with
    /// its float32 bound: n = C·k² + 1 (forward), O·k² + 1 (∂x), N·(OH·OW + 1) + 1 (∂w, ∂b).
    private func reference(_ x: [Float], _ w: [Float], _ b: [Float], _ dy: [Float], _ g: Conv2DGeometry)
        -> (y: [Double], yb: [Double], dx: [Double], dxb: [Double], dw: [Double], dwb: [Double], db: [Double], dbb: [Double]) {
        let C = g.inChannels, H = g.height, W = g.width, O = g.outChannels, k = g.kernel
        var y = [BoundedSum](repeating: BoundedSum(), count: g.outputCount)
        var dx = [BoundedSum](repeating: BoundedSum(), count: g.inputCount)
        var dw = [BoundedSum](repeating: BoundedSum(), count: g.weightCount)
        var db = [BoundedSum](repeating: BoundedSum(), count: O)
        for n in 0..<g.batch { for o in 0..<O { for i in 0..<g.outHeight { for j in 0..<g.outWidth {
            let yi = ((n * O + o) * g.outHeight + i) * g.outWidth + j
            let d = Double(dy[yi])
            var s = BoundedSum(Double(b[o]))
            db[o].add(d)
            for c in 0..<C { for u in 0..<k { for v in 0..<k {
                let h = i * g.stride - g.padding + u, ww = j * g.stride - g.padding + v
                if h < 0 || h >= H || ww < 0 || ww >= W { continue }
                let xi = ((n * C + c) * H + h) * W + ww, wi = ((o * C + c) * k + u) * k + v
                s.add(Double(w[wi]), Double(x[xi]))
                dx[xi].add(Double(w[wi]), d)
                dw[wi].add(Double(x[xi]), d)
            } } }
            y[yi] = s
        } } } }
        let ny = C * k * k + 1, nx = O * k * k + 1, nw = g.batch * (g.outPlane + 1) + 1
        var yb = y.map { $0.bound(terms: ny) }, dxb = dx.map { $0.bound(terms: nx) }
        if let m = Winograd.tileSize(g) {   // forward and ∂x by Winograd F(m×m, 3×3): its own magnitude
            let wb = winogradConvBounds(x: x, w: w, b: b, dy: dy, batch: g.batch, inChannels: C, outChannels: O,
                                        height: H, width: W, tile: m, kernel: k)
            yb = wb.y; dxb = wb.dx!
        }
        return (y.map(\.value), yb, dx.map(\.value), dxb,
                dw.map(\.value), dw.map { $0.bound(terms: nw) }, db.map(\.value), db.map { $0.bound(terms: nw) })
    }

    /// (name, N, C, H, W, O, k, stride, padding)
    private let convShapes: [(String, Int, Int, Int, Int, Int, Int, Int, Int)] = [
        ("cnn-small conv1 3x3 p1", 3, 3, 32, 32, 8, 3, 1, 1),
        ("cnn-small conv2 3x3 p1 (Winograd F(2x2): 64 tiles)", 2, 32, 16, 16, 16, 3, 1, 1),
        ("vgg11 3x3 p1 (odd size, Winograd F(2x2))", 2, 16, 21, 21, 16, 3, 1, 1),
        ("vgg11 3x3 p1 (odd size, Winograd F(4x4))", 2, 16, 29, 27, 16, 3, 1, 1),
        ("alexnet conv2 5x5 p2 at 27x27 (Winograd F(2x2, 5x5))", 2, 16, 27, 27, 17, 5, 1, 2),
        ("3x3 p1 under 16 channels (im2col)", 2, 8, 15, 15, 8, 3, 1, 1),
        ("alexnet conv1 11x11 s4 p2", 2, 3, 39, 39, 4, 11, 4, 2),
        ("alexnet conv2 5x5 p2", 2, 6, 9, 9, 5, 5, 1, 2),
        ("alexnet conv3 3x3 p1", 2, 7, 6, 6, 6, 3, 1, 1),
        ("alexnet conv4 3x3 p1 at 13x13 (Winograd F(2x2): 49 tiles)", 2, 24, 13, 13, 16, 3, 1, 1),
        ("3x3 p1 at 12x14 (im2col: 42 2x2 tiles)", 2, 16, 12, 14, 16, 3, 1, 1),
    ]

    func testConvForwardAndBackwardMatchReferenceLoops() {
        for (t, (name, n, c, h, w, o, k, s, p)) in convShapes.enumerated() {
            let g = Conv2DGeometry(batch: n, inChannels: c, height: h, width: w, outChannels: o,
                                   kernel: k, stride: s, padding: p)
            let x = random(g.inputCount, seed: UInt64(100 + t)), wt = random(g.weightCount, seed: UInt64(200 + t))
            let b = random(o, seed: UInt64(300 + t)), dy = random(g.outputCount, seed: UInt64(400 + t))
            let ref = reference(x, wt, b, dy, g)
            for threads in [1, 2, 3] {   // the batch in one part / split over threads
                var y = [Float](repeating: .nan, count: g.outputCount)
                Conv2D.forward(x: x, weight: wt, bias: b, y: &y, geometry: g, threads: threads)
                assertWithinBounds(y, ref.y, ref.yb, "\(name) forward (\(threads) threads)")
                var dx = [Float](repeating: .nan, count: g.inputCount)
                var dw = [Float](repeating: 0, count: g.weightCount), db = [Float](repeating: 0, count: o)
                Conv2D.backward(x: x, weight: wt, dy: dy, geometry: g, dx: &dx, dWeight: &dw, dBias: &db,
                                threads: threads)
                assertWithinBounds(dx, ref.dx, ref.dxb, "\(name) ∂x")
                assertWithinBounds(dw, ref.dw, ref.dwb, "\(name) ∂w")
                assertWithinBounds(db, ref.db, ref.dbb, "\(name) ∂b")
                var dx2 = [Float](repeating: .nan, count: g.inputCount)
                Conv2D.backward(x: nil, weight: wt, dy: dy, geometry: g, dx: &dx2, dWeight: nil, dBias: nil,
                                threads: threads)
                XCTAssertEqual(dx2, dx, "\(name) input-gradient-only path")
            }
        }
    }

    /// (name, N, C, H, W, O, k, stride, padding): layers with C ≤ 4 input channels, which
    /// `DirectConv` computes (forward and ∂x): the two paper backbones' first layers at full size,
    /// then odd small shapes (padding 0, strides 2 and 3, stride larger than the kernel, padding
    /// as large as the kernel, C = 1, 2, 4, O not a multiple of the 4-channel register tile,
    /// widths that leave 1…23 lanes of a 24-lane tile, non-square images, batch 1 and 3).
    private let directShapes: [(String, Int, Int, Int, Int, Int, Int, Int, Int)] = [
        ("alexnet c1 3->64 11x11/4 p2 @224", 2, 3, 224, 224, 64, 11, 4, 2),
        ("vgg11 c1 3->64 3x3 p1 @224", 1, 3, 224, 224, 64, 3, 1, 1),
        ("C1 5x5 p0 odd width", 3, 1, 17, 29, 6, 5, 1, 0),
        ("C3 3x3 s2 p1 odd", 1, 3, 23, 31, 5, 3, 2, 1),
        ("C2 4x4 s3 p2 non-square", 3, 2, 19, 26, 7, 4, 3, 2),
        ("C4 1x1 s2 (stride > kernel)", 3, 4, 9, 11, 9, 1, 2, 0),
        ("C3 2x2 p2 (padding = kernel)", 1, 3, 5, 7, 4, 2, 1, 2),
        ("C3 11x11 s4 p2 small", 3, 3, 39, 47, 8, 11, 4, 2),
        ("C1 3x3 p1 wide row (tail of 1 lane)", 1, 1, 4, 49, 3, 3, 1, 1),
    ]

    /// `DirectConv` (C ≤ 4) against the reference loops: forward, ∂x, ∂w, ∂b within their float32
    /// bounds (one fixed-order sum of C·k² + 1, resp. ≤ O·k², terms per value) for 1, 2 and 3
    /// threads; forward and ∂x bitwise the same for every thread count and for an image computed
    /// alone; and every value within 1e-4 of the reference relative to its magnitude Σ|terms|.
    func testFewInputChannelConvMatchesReferenceLoops() {
        for (t, (name, n, c, h, w, o, k, s, p)) in directShapes.enumerated() {
            let g = Conv2DGeometry(batch: n, inChannels: c, height: h, width: w, outChannels: o,
                                   kernel: k, stride: s, padding: p)
            XCTAssertTrue(DirectConv.applies(g), name)
            let x = random(g.inputCount, seed: UInt64(1100 + t)), wt = random(g.weightCount, seed: UInt64(1200 + t))
            let b = random(o, seed: UInt64(1300 + t)), dy = random(g.outputCount, seed: UInt64(1400 + t))
            let ref = reference(x, wt, b, dy, g)
            var y1: [Float] = [], dx1: [Float] = []
            for threads in [1, 2, 3] {
                var y = [Float](repeating: .nan, count: g.outputCount)
                Conv2D.forward(x: x, weight: wt, bias: b, y: &y, geometry: g, threads: threads)
                let ry = assertWithinBounds(y, ref.y, ref.yb, "\(name) forward (\(threads) threads)")
                var dx = [Float](repeating: .nan, count: g.inputCount)
                var dw = [Float](repeating: 0, count: g.weightCount), db = [Float](repeating: 0, count: o)
                Conv2D.backward(x: x, weight: wt, dy: dy, geometry: g, dx: &dx, dWeight: &dw, dBias: &db,
                                threads: threads)
                let rx = assertWithinBounds(dx, ref.dx, ref.dxb, "\(name) ∂x (\(threads) threads)")
                assertWithinBounds(dw, ref.dw, ref.dwb, "\(name) ∂w (\(threads) threads)")
                assertWithinBounds(db, ref.db, ref.dbb, "\(name) ∂b (\(threads) threads)")
                if threads == 1 {
                    y1 = y; dx1 = dx
                    // The bounds are not vacuous: the worst error is a visible fraction of them
                    // somewhere in the large layers (float32 rounding does happen).
                    if g.outPlane > 1000 { XCTAssertGreaterThan(max(ry.worstRatio, rx.worstRatio), 1e-3, name) }
                } else {
                    assertSameBits(y, y1, "\(name) forward, \(threads) threads vs 1")
                    assertSameBits(dx, dx1, "\(name) ∂x, \(threads) threads vs 1")
                }
                // 1e-4 of the magnitude (γ_n·magnitude is the bound: n·2⁻²⁴ ≤ 1e-4 up to n ≈ 1677).
                for (label, got, want, bound, terms) in [("forward", y, ref.y, ref.yb, c * k * k + 1),
                                                         ("∂x", dx, ref.dx, ref.dxb, o * k * k + 1),
                                                         ("∂w", dw, ref.dw, ref.dwb, n * (g.outPlane + 1) + 1)] {
                    var worst = 0.0
                    for i in got.indices {
                        let magnitude = bound[i] / gamma(terms)
                        if magnitude > 0 { worst = max(worst, abs(Double(got[i]) - want[i]) / magnitude) }
                    }
                    XCTAssertLessThanOrEqual(worst, 1e-4, "\(name) \(label): worst |error|/Σ|terms| \(worst)")
                }
            }
            // An image computed alone gives the same bits as inside the batch.
            if n > 1 {
                let g1 = Conv2DGeometry(batch: 1, inChannels: c, height: h, width: w, outChannels: o,
                                        kernel: k, stride: s, padding: p)
                let last = n - 1
                var y = [Float](repeating: .nan, count: g1.outputCount), dx = [Float](repeating: .nan, count: g1.inputCount)
                Conv2D.forward(x: Array(x[(last * g1.inputCount)...]), weight: wt, bias: b, y: &y, geometry: g1)
                Conv2D.backward(x: nil, weight: wt, dy: Array(dy[(last * g1.outputCount)...]), geometry: g1, dx: &dx,
                                dWeight: nil, dBias: nil)
                assertSameBits(y, y1[(last * g1.outputCount)...], "\(name) forward of image \(last) alone")
                assertSameBits(dx, dx1[(last * g1.inputCount)...], "\(name) ∂x of image \(last) alone")
            }
        }
    }

    /// Winograd layers (F(2×2, 3×3), F(4×4, 3×3), F(2×2, 5×5)) convolve each image alone: an
    /// image's forward and ∂x are the same bits in a batch of 3 (1, 2 and 3 threads) as computed
    /// alone, so attacks give the same adversarial images whatever the chunk or shard they run in.
    func testWinogradImageResultsDoNotDependOnTheBatch() {
        for (t, (name, c, h, w, o, k, p)) in [("F(2x2, 3x3)", 16, 21, 21, 16, 3, 1), ("F(4x4, 3x3)", 16, 29, 27, 20, 3, 1),
                                              ("F(2x2, 5x5)", 17, 27, 27, 16, 5, 2)].enumerated() {
            let g = Conv2DGeometry(batch: 3, inChannels: c, height: h, width: w, outChannels: o, kernel: k, stride: 1, padding: p)
            let g1 = Conv2DGeometry(batch: 1, inChannels: c, height: h, width: w, outChannels: o, kernel: k, stride: 1, padding: p)
            XCTAssertNotNil(Winograd.tileSize(g), name)
            let x = random(g.inputCount, seed: UInt64(3100 + t)), wt = random(g.weightCount, seed: UInt64(3200 + t))
            let b = random(o, seed: UInt64(3300 + t)), dy = random(g.outputCount, seed: UInt64(3400 + t))
            for image in 0..<3 {
                var y1 = [Float](repeating: .nan, count: g1.outputCount), dx1 = [Float](repeating: .nan, count: g1.inputCount)
                Conv2D.forward(x: Array(x[(image * g1.inputCount)..<((image + 1) * g1.inputCount)]), weight: wt, bias: b,
                               y: &y1, geometry: g1)
                Conv2D.backward(x: nil, weight: wt, dy: Array(dy[(image * g1.outputCount)..<((image + 1) * g1.outputCount)]),
                                geometry: g1, dx: &dx1, dWeight: nil, dBias: nil)
                for threads in [1, 2, 3] {
                    var y = [Float](repeating: .nan, count: g.outputCount), dx = [Float](repeating: .nan, count: g.inputCount)
                    Conv2D.forward(x: x, weight: wt, bias: b, y: &y, geometry: g, threads: threads)
                    Conv2D.backward(x: nil, weight: wt, dy: dy, geometry: g, dx: &dx, dWeight: nil, dBias: nil, threads: threads)
                    assertSameBits(y[(image * g1.outputCount)..<((image + 1) * g1.outputCount)], y1,
                                   "\(name) forward of image \(image) in the batch (\(threads) threads) vs alone")
                    assertSameBits(dx[(image * g1.inputCount)..<((image + 1) * g1.inputCount)], dx1,
                                   "\(name) ∂x of image \(image) in the batch (\(threads) threads) vs alone")
                }
            }
        }
    }

    /// Scalar reference scan: row-major window order, first maximum wins, NaN wins (last NaN).
    private func referencePool(_ x: [Float], _ g: Pool2DGeometry) -> (y: [Float], idx: [Int32]) {
        var y = [Float](), idx = [Int32]()
        for pl in 0..<g.planes { for i in 0..<g.outHeight { for j in 0..<g.outWidth {
            var best = -Float.infinity, at = i * g.stride * g.width + j * g.stride
            for u in 0..<g.kernel { for v in 0..<g.kernel {
                let h = i * g.stride + u, w = j * g.stride + v
                let val = x[pl * g.height * g.width + h * g.width + w]
                if val > best || val.isNaN { best = val; at = h * g.width + w }
            } }
            y.append(best); idx.append(Int32(at))
        } } }
        return (y, idx)
    }

    func testMaxPoolMatchesReferenceScan() {
        // (k, s, H, W): 2×2/2 wide enough for the 8-lane path (with and without a scalar tail,
        // odd sizes); alexnet's 3×3/2 at its three sizes (8-lane blocks with scalar tails, and
        // 13×13 all scalar), an odd width where the last block would read past the row (33: the
        // 8-lane path stops at 2j + 18 > W), a non-square one. Each input once with a few NaN
        // and -inf values (the 8-lane paths hand such windows to the scalar scan) and once
        // without (the 8-lane paths run wherever they apply).
        let shapes = [(2, 2, 32, 32), (2, 2, 16, 16), (2, 2, 33, 35), (2, 2, 18, 20),
                      (3, 2, 55, 55), (3, 2, 27, 27), (3, 2, 13, 13), (3, 2, 33, 33), (3, 2, 21, 40)]
        for (t, ((k, s, h, w), special)) in shapes.flatMap({ sh in [(sh, true), (sh, false)] }).enumerated() {
            let g = Pool2DGeometry(batch: 2, channels: 3, height: h, width: w, kernel: k, stride: s)
            var rng = SeededRNG(seed: UInt64(t))
            // A 5-level grid (many ties), and (`special`) a few -inf and NaN values.
            var x = (0..<g.inputCount).map { _ in Float(rng.below(5)) - 2 }
            if special {
                for _ in 0..<(g.inputCount / 50 + 1) { x[rng.below(g.inputCount)] = .nan }
                for _ in 0..<(g.inputCount / 50 + 1) { x[rng.below(g.inputCount)] = -.infinity }
            }
            var y = [Float](repeating: 7, count: g.outputCount), idx = [Int32](repeating: -1, count: g.outputCount)
            MaxPool2D.forward(x: x, y: &y, argmax: &idx, geometry: g)
            let ref = referencePool(x, g)
            XCTAssertEqual(idx, ref.idx, "argmax \(k)/\(s) \(h)x\(w)")
            XCTAssertEqual(y.map(\.bitPattern), ref.y.map(\.bitPattern), "values \(k)/\(s) \(h)x\(w)")
            let dy = random(g.outputCount, seed: UInt64(t + 10))
            var dx = [Float](repeating: .nan, count: g.inputCount)
            MaxPool2D.backward(dy: dy, argmax: idx, dx: &dx, geometry: g)
            var refDx = [Double](repeating: 0, count: g.inputCount)
            let op = g.outHeight * g.outWidth
            for pl in 0..<g.planes { for o in 0..<op {
                refDx[pl * h * w + Int(ref.idx[pl * op + o])] += Double(dy[pl * op + o])
            } }
            // Overlapping windows add several values at one pixel: γ_{m−1}·Σ|values| for m of them.
            var terms = [Int](repeating: 0, count: g.inputCount), mag = [Double](repeating: 0, count: g.inputCount)
            for pl in 0..<g.planes { for o in 0..<op {
                let at = pl * h * w + Int(ref.idx[pl * op + o])
                terms[at] += 1; mag[at] += abs(Double(dy[pl * op + o]))
            } }
            assertWithinBounds(dx, refDx, zip(terms, mag).map { gamma(max($0 - 1, 0)) * $1 }, "pool backward \(k)/\(s) \(h)x\(w)")
        }
    }

    /// The fused conv → ReLU (→ max-pool) epilogue and its adjoint prologue (`Conv2D.forward(…,
    /// relu:, pool:)`, `Conv2D.backward(…, relu:, pool:)`) against the unfused kernels run in turn
    /// (conv, ReLU, pool; then their adjoints), on cnn-small's 2×2/2 pools and alexnet's
    /// overlapping 3×3/2 pools: the same GEMMs on the same per-image shapes, and exact ReLU and
    /// pool steps, so the results must be equal bit for bit for every thread count. (The unfused
    /// conv is checked against the reference within its bounds above.)
    func testFusedConvReLUPoolMatchesUnfusedKernels() {
        // (name, N, C, H, W, O, k, s, p, pool kernel, pool stride; pool kernel 0 = ReLU only)
        let cases: [(String, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int)] = [
            ("cnn-small conv1 block", 3, 3, 32, 32, 8, 3, 1, 1, 2, 2),
            ("cnn-small conv2 block", 3, 32, 16, 16, 16, 3, 1, 1, 2, 2),
            ("alexnet conv1 block (3x3/2 pool)", 2, 3, 39, 39, 4, 11, 4, 2, 3, 2),
            ("alexnet conv3 (ReLU only)", 3, 7, 6, 6, 6, 3, 1, 1, 0, 0),
        ]
        for (t, (name, n, c, h, w, o, k, s, p, pk, ps)) in cases.enumerated() {
            let g = Conv2DGeometry(batch: n, inChannels: c, height: h, width: w, outChannels: o,
                                   kernel: k, stride: s, padding: p)
            let x = random(g.inputCount, seed: UInt64(500 + t)), wt = random(g.weightCount, seed: UInt64(600 + t))
            let b = random(o, seed: UInt64(700 + t))
            let pg = pk > 0 ? Pool2DGeometry(batch: n, channels: o, height: g.outHeight, width: g.outWidth,
                                             kernel: pk, stride: ps) : nil
            let outCount = pg?.outputCount ?? g.outputCount
            let dyOut = random(outCount, seed: UInt64(800 + t))
            for threads in [1, 2, 3] {
                // Unfused: conv, ReLU, pool; backwards pool, ReLU mask, conv.
                var conv = [Float](repeating: .nan, count: g.outputCount)
                Conv2D.forward(x: x, weight: wt, bias: b, y: &conv, geometry: g, threads: threads)
                var relu = [Float](repeating: .nan, count: g.outputCount)
                Elementwise.relu(conv, into: &relu, count: conv.count)
                var refOut = relu, refArgmax = [Int32]()
                var dRelu = dyOut
                if let pg {
                    refOut = [Float](repeating: .nan, count: pg.outputCount)
                    refArgmax = [Int32](repeating: -1, count: pg.outputCount)
                    MaxPool2D.forward(x: relu, y: &refOut, argmax: &refArgmax, geometry: pg)
                    dRelu = [Float](repeating: .nan, count: g.outputCount)
                    MaxPool2D.backward(dy: dyOut, argmax: refArgmax, dx: &dRelu, geometry: pg)
                }
                var dConv = [Float](repeating: .nan, count: g.outputCount)
                Elementwise.reluBackward(output: relu, dRelu, into: &dConv, count: dConv.count)
                var refDx = [Float](repeating: .nan, count: g.inputCount)
                var refDw = [Float](repeating: 0, count: g.weightCount), refDb = [Float](repeating: 0, count: o)
                Conv2D.backward(x: x, weight: wt, dy: dConv, geometry: g, dx: &refDx, dWeight: &refDw, dBias: &refDb,
                                threads: threads)
                // Fused.
                var y = [Float](repeating: .nan, count: g.outputCount)
                var pooled = [Float](repeating: .nan, count: outCount)
                var argmax = [Int32](repeating: -1, count: pg?.outputCount ?? 0)
                y.withUnsafeMutableBufferPointer { yp in
                    pooled.withUnsafeMutableBufferPointer { pp in
                        argmax.withUnsafeMutableBufferPointer { ap in
                            let po = pg.map { Conv2D.PoolOutput(geometry: $0, y: pp.baseAddress!, argmax: ap.baseAddress!) }
                            // With a pool the full output is not needed (y: nil, the kernel's path).
                            Conv2D.forward(x: x, weight: wt, bias: b, y: po == nil ? yp.baseAddress! : nil, geometry: g,
                                           relu: true, pool: po, threads: threads)
                        }
                    }
                }
                XCTAssertEqual(pg == nil ? y : pooled, refOut, "\(name) fused forward (\(threads) threads)")
                XCTAssertEqual(argmax, refArgmax, "\(name) fused argmax (\(threads) threads)")
                var dx = [Float](repeating: .nan, count: g.inputCount)
                var dw = [Float](repeating: 0, count: g.weightCount), db = [Float](repeating: 0, count: o)
                argmax.withUnsafeBufferPointer { ap in
                    let pgrad = pg.map { Conv2D.PoolGradient(geometry: $0, argmax: ap.baseAddress!) }
                    Conv2D.backward(x: x, weight: wt, dy: dyOut, geometry: g, dx: &dx, dWeight: &dw, dBias: &db,
                                    relu: pg == nil ? y : pooled, pool: pgrad, threads: threads)
                }
                XCTAssertEqual(dx, refDx, "\(name) fused ∂x (\(threads) threads)")
                XCTAssertEqual(dw, refDw, "\(name) fused ∂w (\(threads) threads)")
                XCTAssertEqual(db, refDb, "\(name) fused ∂b (\(threads) threads)")
            }
        }
    }

    // MARK: every paper layer at its real size: input and weight gradients

    /// (name, C, O, H, k, padding): every stride-1 convolution of alexnet and vgg11 at 224×224,
    /// at its real size (one image). The two first layers (C = 3, `DirectConv`) are checked at
    /// full size in `testFewInputChannelConvMatchesReferenceLoops`; the forward of every layer in
    /// pytest (tests/test_kernels.py).
    private let paperGradientShapes: [(String, Int, Int, Int, Int, Int)] = [
        ("alexnet c2 64->192 5x5 @27", 64, 192, 27, 5, 2), ("alexnet c3 192->384 @13", 192, 384, 13, 3, 1),
        ("alexnet c4 384->256 @13", 384, 256, 13, 3, 1), ("alexnet c5 256->256 @13", 256, 256, 13, 3, 1),
        ("vgg11 c2 64->128 @112", 64, 128, 112, 3, 1), ("vgg11 c3 128->256 @56", 128, 256, 56, 3, 1),
        ("vgg11 c4 256->256 @56", 256, 256, 56, 3, 1), ("vgg11 c5 256->512 @28", 256, 512, 28, 3, 1),
        ("vgg11 c6 512->512 @28", 512, 512, 28, 3, 1), ("vgg11 c7,c8 512->512 @14", 512, 512, 14, 3, 1),
    ]

    /// ∂x and ∂w of every paper layer at its real size against a float64 reference (im2col and
    /// double-precision BLAS, which is exact enough: its own error is ~1e-16 relative), within
    /// the float32 bounds of the algorithm the layer runs (Winograd's magnitude for ∂x where it
    /// applies, γ_{O·k²+1}·Σ|w·δ| otherwise; γ_{P+2}·Σ|δ·x| for ∂w, P = OH·OW); and, as a
    /// summary, max |error| ≤ 1e-4 · max |reference| for both.
    func testPaperLayerGradientsAtRealSizeMatchFloat64() {
        for (t, (name, C, O, H, k, p)) in paperGradientShapes.enumerated() {
            let g = Conv2DGeometry(batch: 1, inChannels: C, height: H, width: H, outChannels: O, kernel: k, padding: p)
            let x = random(g.inputCount, seed: UInt64(2100 + t)), w = random(g.weightCount, seed: UInt64(2200 + t))
            let dy = random(g.outputCount, seed: UInt64(2300 + t))
            var dx = [Float](repeating: .nan, count: g.inputCount), dw = [Float](repeating: 0, count: g.weightCount)
            Conv2D.backward(x: x, weight: w, dy: dy, geometry: g, dx: &dx, dWeight: &dw, dBias: nil, threads: 2)

            // The float64 column matrix (K × P) of the image, its absolute values, and |w|, |δ|.
            let K = g.patchSize, P = g.outPlane
            var cols = [Double](repeating: 0, count: K * P)
            for c in 0..<C { for u in 0..<k { for v in 0..<k { for i in 0..<H { for j in 0..<H {
                let h = i - p + u, ww = j - p + v
                if h >= 0 && h < H && ww >= 0 && ww < H { cols[((c * k + u) * k + v) * P + i * H + j] = Double(x[(c * H + h) * H + ww]) }
            } } } } }
            let wd = w.map(Double.init), dd = dy.map(Double.init)
            let colsAbs = cols.map(abs), wAbs = wd.map(abs), dAbs = dd.map(abs)
            /// Wᵀ·δ (K × P) scattered back to the image (col2im).
            func inputGradient(_ w: [Double], _ d: [Double]) -> [Double] {
                var dcols = [Double](repeating: 0, count: K * P)
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(K), Int32(P), Int32(O), 1, w, Int32(K), d,
                            Int32(P), 0, &dcols, Int32(P))
                var out = [Double](repeating: 0, count: g.inputCount)
                for c in 0..<C { for u in 0..<k { for v in 0..<k { for i in 0..<H { for j in 0..<H {
                    let h = i - p + u, ww = j - p + v
                    if h >= 0 && h < H && ww >= 0 && ww < H { out[(c * H + h) * H + ww] += dcols[((c * k + u) * k + v) * P + i * H + j] }
                } } } } }
                return out
            }
            /// δ·colsᵀ (O × K).
            func weightGradient(_ d: [Double], _ cols: [Double]) -> [Double] {
                var out = [Double](repeating: 0, count: O * K)
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(O), Int32(K), Int32(P), 1, d, Int32(P), cols,
                            Int32(P), 0, &out, Int32(K))
                return out
            }
            let dxRef = inputGradient(wd, dd), dwRef = weightGradient(dd, cols)
            let dxBound: [Double]
            if let m = Winograd.tileSize(g) {
                dxBound = winogradConvBounds(x: x, w: w, b: [Float](repeating: 0, count: O), dy: dy, batch: 1, inChannels: C,
                                             outChannels: O, height: H, width: H, tile: m, kernel: k).dx!
            } else {
                dxBound = inputGradient(wAbs, dAbs).map { gamma(O * k * k + 1) * $0 }
            }
            let dwBound = weightGradient(dAbs, colsAbs).map { gamma(P + 2) * $0 }
            let rx = assertWithinBounds(dx, dxRef, dxBound, "\(name) ∂x")
            let rw = assertWithinBounds(dw, dwRef, dwBound, "\(name) ∂w")
            // Not vacuous: rounding shows as a visible fraction of the bounds (2e-4 to 3e-2 of
            // them, measured; 3e-5 for vgg11 c2's ∂w).
            XCTAssertGreaterThan(max(rx.worstRatio, rw.worstRatio), 1e-4, "\(name): worst |error|/bound")
            for (label, got, want) in [("∂x", dx, dxRef), ("∂w", dw, dwRef)] {
                var worst = 0.0, largest = 0.0
                for i in got.indices { worst = max(worst, abs(Double(got[i]) - want[i])); largest = max(largest, abs(want[i])) }
                XCTAssertLessThanOrEqual(worst, 1e-4 * largest, "\(name) \(label): max |error| \(worst), max |reference| \(largest)")
            }
        }
    }
}
