import Foundation
import XCTest
import NumericBounds
import HashKernels
@testable import SAATCore

/// The layers of ProS-GAN's generator and discriminator: ConvTranspose2d, InstanceNorm2d,
/// LeakyReLU, Sigmoid, SpectralNorm, ResidualBlock, ChannelConcat. Every layer's output, input
/// gradient and parameter gradients are checked against a float64 reference within its float32
/// error bound, and the reference against float64 central differences (GradCheck.swift,
/// GANReference.swift); plus value tests against independent formulas (a gather form of the
/// transposed convolution, hand-computed examples, closed-form singular values).
final class GANLayerTests: XCTestCase {

    /// `checkLayersAgainstReference` for one layer whose reference is built after the layer's
    /// forward (SpectralNorm's u and v are those of that forward's power iteration).
    @discardableResult
    private func checkLayer(_ layer: Layer, input x: Tensor, mode: Mode = .train, seed: UInt64, label: String,
                            reference: @escaping () -> RefLayer,
                            file: StaticString = #filePath, line: UInt = #line) -> [String: BoundReport] {
        let step = ProductionStep(name: "0", params: layer.params.map { ("0.\($0.name)", $0) }, reference: reference,
                                  forward: { layer.forward($0, mode: mode) },
                                  backward: { layer.backward($0, paramGrads: true) })
        let dy = randomTensor([x.shape[0]] + layer.outputShape(Array(x.shape.dropFirst())), seed: seed)
        for p in layer.params { p.grad.zero() }
        let check = assertChainMatchesReference([step], x: x, dy: dy, label: label, file: file, line: line)
        checkReferenceByFiniteDifferences(RefChain(check.references), x: x, dy: dy, probes: 12, seed: seed &+ 1,
                                          label: label, file: file, line: line)
        return check.reports
    }

    // MARK: ConvTranspose2d

    /// (C, O, k, s, p, output padding, H, W, bias): stride 1 and 2 and 3, padding, output padding,
    /// DCGAN's kernel-4/stride-2/padding-1 doubling, k = 1, non-square images.
    private let transposeConfigs: [(Int, Int, Int, Int, Int, Int, Int, Int, Bool)] = [
        (2, 3, 3, 1, 0, 0, 5, 4, true), (3, 2, 3, 2, 1, 1, 4, 5, true), (2, 3, 4, 2, 1, 0, 4, 4, true),
        (3, 2, 4, 2, 1, 1, 3, 5, false), (2, 2, 5, 3, 2, 2, 3, 4, true), (3, 4, 1, 1, 0, 0, 3, 2, true),
        (2, 3, 3, 2, 0, 1, 2, 3, true),
    ]

    func testConvTranspose2dMatchesGatherForm() {
        for (t, (C, O, k, s, p, op, H, W, hasBias)) in transposeConfigs.enumerated() {
            var rng = SeededRNG(seed: UInt64(500 + t))
            let l = ConvTranspose2d(inChannels: C, outChannels: O, kernel: k, stride: s, padding: p,
                                    outputPadding: op, bias: hasBias, rng: &rng)
            let n = 2, x = randomTensor([n, C, H, W], seed: UInt64(510 + t))
            let y = l.forward(x, mode: .eval)
            let OH = (H - 1) * s - 2 * p + k + op, OW = (W - 1) * s - 2 * p + k + op
            XCTAssertEqual(y.shape, [n, O, OH, OW], "config \(t)")
            XCTAssertEqual(l.outputShape([C, H, W]), [O, OH, OW])
            // Gather form: y[n, o, h, w] = b[o] + Σ over (c, u, v) with h + p − u = i·s (0 ≤ i < H),
            // likewise for w, of x[n, c, i, j]·w[c, o, u, v]. Any float32 evaluation of a sum of
            // C·k²+1 terms is within γ_{C·k²+1}·Σ|terms| of it.
            var ref = [Double](), bound = [Double]()
            let w = l.weight.value.data, b = l.bias?.value.data
            for img in 0..<n { for o in 0..<O { for h in 0..<OH { for ww in 0..<OW {
                var acc = BoundedSum(b.map { Double($0[o]) } ?? 0)
                for c in 0..<C { for u in 0..<k { for v in 0..<k {
                    let a = h + p - u, bb = ww + p - v
                    guard a >= 0, bb >= 0, a % s == 0, bb % s == 0, a / s < H, bb / s < W else { continue }
                    acc.add(Double(x.data[((img * C + c) * H + a / s) * W + bb / s]), Double(w[((c * O + o) * k + u) * k + v]))
                } } }
                ref.append(acc.value); bound.append(acc.bound(terms: C * k * k + 1))
            } } } }
            let r = assertWithinBounds(y.data, ref, bound, "convT gather config \(t)")
            XCTAssertLessThan(r.worstRatio, 1)
        }
    }

    func testConvTranspose2dHandExample() {
        // One channel, x = [[1, 2], [3, 4]], kernel 2 = [[1, 10], [100, 1000]], stride 2: every
        // input value stamps x·w on its own 2×2 block. Products of small integers: exact.
        var rng = SeededRNG(seed: 1)
        let x = Tensor(shape: [1, 1, 2, 2], data: [1, 2, 3, 4])
        let wv: [Float] = [1, 10, 100, 1000]
        let full = ConvTranspose2d(inChannels: 1, outChannels: 1, kernel: 2, stride: 2, bias: true, rng: &rng)
        full.weight.value = Tensor(shape: [1, 1, 2, 2], data: wv)
        full.bias!.value = Tensor(shape: [1], data: [0.5])
        XCTAssertEqual(full.forward(x, mode: .eval).data,
                       ([1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000] as [Float]).map { $0 + 0.5 })
        // Padding 1 crops one row/column on each side of that 4×4 result.
        let cropped = ConvTranspose2d(inChannels: 1, outChannels: 1, kernel: 2, stride: 2, padding: 1, bias: false, rng: &rng)
        cropped.weight.value = Tensor(shape: [1, 1, 2, 2], data: wv)
        XCTAssertEqual(cropped.forward(x, mode: .eval).data, [1000, 200, 30, 4])
        // Output padding 1 gives back the last row and column (bottom/right side only).
        let padded = ConvTranspose2d(inChannels: 1, outChannels: 1, kernel: 2, stride: 2, padding: 1, outputPadding: 1,
                                     bias: false, rng: &rng)
        padded.weight.value = Tensor(shape: [1, 1, 2, 2], data: wv)
        let y = padded.forward(x, mode: .eval)
        XCTAssertEqual(y.shape, [1, 1, 3, 3])
        XCTAssertEqual(y.data, [1000, 200, 2000, 30, 4, 40, 3000, 400, 4000])
        // Backward of the 4×4 case: ∂x[i, j] = Σ_{u,v} w[u, v]·∂y[2i + u, 2j + v]; ∂w = Σ x·∂y
        // block by block; ∂b = Σ ∂y. With ∂y = 1 everywhere: ∂x = 1111, ∂w = 10, ∂b = 16.
        full.weight.grad.zero(); full.bias!.grad.zero()
        let dx = full.backward(Tensor(repeating: 1, shape: [1, 1, 4, 4]), paramGrads: true)
        XCTAssertEqual(dx.data, [1111, 1111, 1111, 1111])
        XCTAssertEqual(full.weight.grad.data, [10, 10, 10, 10])
        XCTAssertEqual(full.bias!.grad.data, [16])
    }

    func testConvTranspose2dGradients() {
        // The bounds hold for any summation order, so for any thread split of the batch (∂W and
        // ∂b are summed per part): checked with 1 and 3 kernel threads besides the default.
        let saved = ParallelFor.computeThreads
        defer { ParallelFor.setComputeThreads(saved) }
        for threads in [saved, 1, 3] {
            ParallelFor.setComputeThreads(threads)
            for (t, (C, O, k, s, p, op, H, W, hasBias)) in transposeConfigs.enumerated() {
                var rng = SeededRNG(seed: UInt64(600 + t))
                let l = ConvTranspose2d(inChannels: C, outChannels: O, kernel: k, stride: s, padding: p,
                                        outputPadding: op, bias: hasBias, rng: &rng)
                let x = randomTensor([3, C, H, W], seed: UInt64(610 + t))
                XCTAssertFalse(Winograd.applies(l.convGeometry(batch: 3, [C, H, W])))
                let label = "convT C\(C) O\(O) k\(k) s\(s) p\(p) op\(op) threads \(threads)"
                let r = checkLayer(l, input: x, seed: UInt64(620 + t), label: label) { RefConvTranspose(l) }
                assertCovers(r, hasBias ? ["0.weight", "0.bias"] : ["0.weight"], label)
            }
        }
    }

    func testConvTranspose2dInitialisationAndAccumulation() {
        var rng = SeededRNG(seed: 81)
        let l = ConvTranspose2d(inChannels: 4, outChannels: 3, kernel: 4, stride: 2, padding: 1, rng: &rng)
        XCTAssertEqual(l.weight.value.shape, [4, 3, 4, 4])   // PyTorch: (C_in, C_out, k, k)
        XCTAssertEqual(l.bias!.value.shape, [3])
        XCTAssertEqual(l.params.map { $0.name }, ["weight", "bias"])
        var replay = SeededRNG(seed: 81)
        let bound = 1 / Float(3 * 16).squareRoot()   // fan_in = weight.size(1)·k·k
        for v in l.weight.value.data { XCTAssertEqual(v, replay.uniform(-bound, bound)) }
        for v in l.bias!.value.data { XCTAssertEqual(v, replay.uniform(-bound, bound)) }
        XCTAssertEqual(replay, rng)
        XCTAssertEqual(l.outputShape([4, 8, 8]), [3, 16, 16])
        // paramGrads false leaves the gradients alone; ∂x is the same either way.
        let x = randomTensor([2, 4, 3, 3], seed: 82)
        let dy = randomTensor([2, 3, 6, 6], seed: 83)
        _ = l.forward(x, mode: .train)
        let dx1 = l.backward(dy, paramGrads: true)
        let g1 = l.params.map { $0.grad }
        XCTAssertEqual(l.backward(dy, paramGrads: false), dx1)
        XCTAssertEqual(l.params.map { $0.grad }, g1)
    }

    // MARK: InstanceNorm2d

    func testInstanceNormHandExample() {
        // One plane [1, 2, 3, 4]: μ = 2.5, σ² = 1.25 (biased), y = (x − 2.5)/√(1.25 + 1e-5),
        // rounded once from float64: within u·|y| + 2·(float64 evaluation bound) ≤ 2u·|y|.
        let norm = InstanceNorm2d(channels: 1)
        let y = norm.forward(Tensor(shape: [1, 1, 2, 2], data: [1, 2, 3, 4]), mode: .train)
        for (i, x) in [1.0, 2, 3, 4].enumerated() {
            let ref = (x - 2.5) / (1.25 + 1e-5).squareRoot()
            XCTAssertLessThanOrEqual(abs(Double(y.data[i]) - ref), 2 * Rounding.float32 * abs(ref))
        }
        XCTAssertTrue(norm.params.isEmpty)
        let affine = InstanceNorm2d(channels: 2, eps: 1e-3, affine: true)
        XCTAssertEqual(affine.params.map { $0.name }, ["weight", "bias"])
        XCTAssertEqual(affine.weight!.value.data, [1, 1])
        XCTAssertEqual(affine.bias!.value.data, [0, 0])
        // A constant plane: x̂ = 0, so y = β, and ∂x = 0 (r·(g − mean g − 0)) for a constant ∂y.
        affine.bias!.value = Tensor(shape: [2], data: [0.25, -3])
        let c = affine.forward(Tensor(repeating: 7, shape: [1, 2, 3, 3]), mode: .eval)
        XCTAssertEqual(c.data, [Float](repeating: 0.25, count: 9) + [Float](repeating: -3, count: 9))
        XCTAssertTrue(affine.backward(Tensor(repeating: 1, shape: [1, 2, 3, 3]), paramGrads: false).data.allSatisfy { $0 == 0 })
    }

    func testInstanceNormGradients() {
        let x = randomTensor([2, 3, 5, 4], seed: 701)
        let plain = InstanceNorm2d(channels: 3)
        assertCovers(checkLayer(plain, input: x, seed: 702, label: "instance norm") { RefInstanceNorm(plain) },
                     [], "instance norm")
        let affine = InstanceNorm2d(channels: 3, eps: 1e-3, affine: true)
        affine.weight!.value = randomTensor([3], seed: 703, lo: 0.5, hi: 2)
        affine.bias!.value = randomTensor([3], seed: 704)
        assertCovers(checkLayer(affine, input: x, seed: 705, label: "instance norm affine") { RefInstanceNorm(affine) },
                     ["0.weight", "0.bias"], "instance norm affine")
        // An offset plane (mean 100, spread 1): float32 statistics would cancel; float64 do not.
        let offset = Tensor(shape: x.shape, data: x.data.map { $0 + 100 })
        checkLayer(plain, input: offset, seed: 706, label: "instance norm offset") { RefInstanceNorm(plain) }
    }

    // MARK: LeakyReLU / Sigmoid

    func testLeakyReLUValuesAndGradients() {
        var x = randomTensor([2, 3, 5, 7], seed: 801)
        x.data[0] = 0; x.data[1] = -0.0
        for slope: Float in [0.2, 0.01] {
            let l = LeakyReLU(negativeSlope: slope)
            let y = l.forward(x, mode: .train)
            for i in 0..<x.count { XCTAssertEqual(y.data[i], x.data[i] > 0 ? x.data[i] : slope * x.data[i]) }
            let dy = randomTensor(x.shape, seed: 802)
            let dx = l.backward(dy, paramGrads: true)
            // PyTorch's leaky_relu_backward: ∂y where x > 0, slope·∂y elsewhere (also at 0).
            for i in 0..<x.count { XCTAssertEqual(dx.data[i], x.data[i] > 0 ? dy.data[i] : slope * dy.data[i]) }
            assertCovers(checkLayer(l, input: x, seed: 803, label: "leaky relu \(slope)") { RefLeakyReLU(slope: slope) },
                         [], "leaky relu")
        }
        XCTAssertTrue(LeakyReLU(negativeSlope: 0.2).forward(Tensor(shape: [1, 1], data: [.nan]), mode: .eval).data[0].isNaN)
    }

    func testSigmoidValuesAndGradients() {
        let x = randomTensor([2, 3, 5, 7], seed: 901, lo: -6, hi: 6)
        let s = Sigmoid()
        let y = s.forward(x, mode: .train)
        for i in 0..<x.count {
            let ref = 1 / (1 + Foundation.exp(-Double(x.data[i])))
            XCTAssertLessThanOrEqual(abs(Double(y.data[i]) - ref), (Rounding.float32 + 8 * Rounding.float64) * ref)
        }
        assertCovers(checkLayer(s, input: x, seed: 902, label: "sigmoid") { RefSigmoid() }, [], "sigmoid")
        // Saturation: finite, in [0, 1], gradients 0 far out, no NaN.
        let far = s.forward(Tensor(shape: [4], data: [-200, -30, 30, 200]), mode: .eval)
        XCTAssertEqual(far.data[3], 1); XCTAssertEqual(far.data[0], 0)
        XCTAssertTrue(far.data.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertTrue(s.backward(Tensor(repeating: 1, shape: [4]), paramGrads: false).data.allSatisfy { $0 >= 0 && $0.isFinite })
    }

    // MARK: SpectralNorm

    func testSpectralNormMatchesClosedFormSingularValue() {
        // W = [[2, 1], [0, 1]]: WᵀW has eigenvalues 3 ± √5, so σ₁ = √(3 + √5), σ₂ = √(3 − √5),
        // ρ = σ₂/σ₁ ≈ 0.38. The stored u, v are float32: each rounding turns a unit vector by an
        // angle ≤ u = 2⁻²⁴ and changes its norm by a factor within 1 ± u; a power step shrinks the
        // angle by ρ, so after the start is forgotten (ρ^400 ≈ 1e-168) θ ≤ u/(1 − ρ) for u and v.
        // σ̂ = ûᵀWv̂ = (1 ± u)²(σ₁ cos θ_u cos θ_v + σ₂ sin θ_u sin θ_v) (± float64 rounding of the
        // sums, γ_5 at 2⁻⁵³), so |σ̂ − σ₁| ≤ σ₁(2u + u² + θ_u² + θ_v² + γ_5) + σ₂θ_uθ_v.
        var rng = SeededRNG(seed: 1001)
        let lin = Linear(inFeatures: 2, outFeatures: 2, rng: &rng)
        lin.weight.value = Tensor(shape: [2, 2], data: [2, 1, 0, 1])
        let sn = SpectralNorm(lin, seed: 1002)
        let x = randomTensor([3, 2], seed: 1003)
        for _ in 0..<200 { _ = sn.forward(x, mode: .train) }
        let s1 = (3 + 5.0.squareRoot()).squareRoot(), s2 = (3 - 5.0.squareRoot()).squareRoot()
        let u = Rounding.float32, theta = u / (1 - s2 / s1)
        let tol = s1 * (2 * u + u * u + 2 * theta * theta + gamma(5, u: Rounding.float64)) + s2 * theta * theta
        XCTAssertLessThanOrEqual(abs(sn.sigma! - s1), tol * boundSlack, "σ \(sn.sigma!) vs \(s1)")
        // The layer's output is the linear map with W/σ.
        let y = sn.forward(x, mode: .eval)
        for r in 0..<3 { for o in 0..<2 {
            var acc = BoundedSum(Double(lin.bias.value.data[o]))
            for i in 0..<2 { acc.add(Double(x.data[r * 2 + i]), Double(lin.weight.value.data[o * 2 + i])) }
            XCTAssertLessThanOrEqual(abs(Double(y.data[r * 2 + o]) - acc.value), acc.bound(terms: 3) * boundSlack)
        } }
    }

    func testSpectralNormOfRankOneWeights() {
        // W_mat = a·bᵀ with dyadic a, b (products exact in float32): σ₁ = ‖a‖·‖b‖, σ₂ = 0, so one
        // power step from any start gives v ∥ b, u ∥ a (float64, then rounded: relative error
        // ≤ u + γ_{h+w+4}(2⁻⁵³) in the weighted sums ûᵀa/‖a‖, bᵀv̂/‖b‖) and
        // |σ̂ − σ₁| ≤ σ₁·(2u + 3γ_{h+w+4}(2⁻⁵³)) to first order.
        let a: [Float] = [1, -2, 0.5, 3]
        func check(_ layer: any SpectralNormalizable, rows: Int, cols: Int, input: [Int], index: (Int, Int) -> Int, label: String) {
            let b: [Float] = (0..<cols).map { Float(($0 * 37) % 11 - 5) / 8 }
            var w = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows { for c in 0..<cols { w[index(r, c)] = a[r] * b[c] } }
            layer.weight.value = Tensor(shape: layer.weight.value.shape, data: w)
            let sn = SpectralNorm(layer, seed: 7)
            XCTAssertEqual(sn.matrixShape.rows, rows, label); XCTAssertEqual(sn.matrixShape.cols, cols, label)
            let x = randomTensor(input, seed: 8)
            _ = sn.forward(x, mode: .train)
            let na = a[0..<rows].map { Double($0 * $0) }.reduce(0, +).squareRoot()
            let nb = b.map { Double($0 * $0) }.reduce(0, +).squareRoot()
            let s1 = na * nb
            let tol = s1 * (2 * Rounding.float32 + 3 * gamma(rows + cols + 4, u: Rounding.float64))
            XCTAssertLessThanOrEqual(abs(sn.sigma! - s1), tol * boundSlack, "\(label): σ \(sn.sigma!) vs \(s1)")
        }
        var rng = SeededRNG(seed: 1101)
        // Conv2d (O = 4, C = 3, 3×3): dim 0, W_mat (4, 27), row-major.
        check(Conv2d(inChannels: 3, outChannels: 4, kernel: 3, rng: &rng), rows: 4, cols: 27, input: [1, 3, 5, 5],
              index: { $0 * 27 + $1 }, label: "conv")
        check(Linear(inFeatures: 6, outFeatures: 3, rng: &rng), rows: 3, cols: 6, input: [1, 6], index: { $0 * 6 + $1 }, label: "linear")
        // ConvTranspose2d (C = 2, O = 4, 2×2): PyTorch's dim 1, W_mat (4, 2·2·2) with column
        // c·4 + (u·2 + v): weight[c, o, u, v] = W_mat[o, c·4 + u·2 + v].
        let convT = ConvTranspose2d(inChannels: 2, outChannels: 4, kernel: 2, stride: 2, rng: &rng)
        XCTAssertEqual(SpectralNorm(convT, seed: 1).dim, 1)
        check(convT, rows: 4, cols: 8, input: [1, 2, 3, 3], index: { o, col in ((col / 4) * 4 + o) * 4 + col % 4 }, label: "convT")
    }

    func testSpectralNormGradients() {
        var rng = SeededRNG(seed: 1201)
        let lin = Linear(inFeatures: 5, outFeatures: 3, rng: &rng)
        let snLin = SpectralNorm(lin, seed: 1202)
        for mode in [Mode.train, .eval] {
            let r = checkLayer(snLin, input: randomTensor([4, 5], seed: 1203), mode: mode, seed: 1204, label: "sn linear \(mode)") {
                RefSpectralNorm(snLin, inner: RefLinear(lin))
            }
            assertCovers(r, ["0.bias", "0.weight_orig"], "sn linear")
        }
        let conv = Conv2d(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1, rng: &rng)
        let snConv = SpectralNorm(conv, seed: 1205)
        let r = checkLayer(snConv, input: randomTensor([2, 2, 5, 5], seed: 1206), seed: 1207, label: "sn conv") {
            RefSpectralNorm(snConv, inner: RefConv(conv))
        }
        assertCovers(r, ["0.bias", "0.weight_orig"], "sn conv")
        let convT = ConvTranspose2d(inChannels: 3, outChannels: 2, kernel: 4, stride: 2, padding: 1, rng: &rng)
        let snT = SpectralNorm(convT, seed: 1208)
        let rt = checkLayer(snT, input: randomTensor([2, 3, 3, 3], seed: 1209), seed: 1210, label: "sn convT") {
            RefSpectralNorm(snT, inner: RefConvTranspose(convT))
        }
        assertCovers(rt, ["0.bias", "0.weight_orig"], "sn convT")
    }

    func testSpectralNormModesStateAndDeterminism() throws {
        var rng = SeededRNG(seed: 1301)
        let conv = Conv2d(inChannels: 2, outChannels: 3, kernel: 3, rng: &rng)
        let w0 = conv.weight.value
        let sn = SpectralNorm(conv, seed: 42)
        XCTAssertEqual(sn.dim, 0)
        XCTAssertEqual(sn.weightOrig.value, w0)
        XCTAssertEqual(sn.u.shape, [3]); XCTAssertEqual(sn.v.shape, [18])
        // Same seed, same start; unit vectors (float32 rounding of each of ≤ 18 entries: the norm
        // is within 1 ± (u + γ_20 at 2⁻⁵³)).
        XCTAssertEqual(SpectralNorm(conv, seed: 42).u, sn.u)
        XCTAssertNotEqual(SpectralNorm(conv, seed: 43).u, sn.u)
        for t in [sn.u, sn.v] {
            let norm = t.data.map { Double($0 * $0) }.reduce(0, +).squareRoot()
            XCTAssertLessThanOrEqual(abs(norm - 1), Rounding.float32 + gamma(20, u: Rounding.float64))
        }
        XCTAssertEqual(sn.stateDict().map { $0.0 }, ["bias", "weight_orig", "weight_u", "weight_v"])
        XCTAssertEqual(sn.params.map { $0.name }, ["bias", "weight_orig"])
        let x = randomTensor([2, 2, 6, 6], seed: 1302)
        // Eval mode: no power iteration.
        let (u0, v0) = (sn.u, sn.v)
        let yEval = sn.forward(x, mode: .eval)
        XCTAssertEqual(sn.u, u0); XCTAssertEqual(sn.v, v0)
        // Train mode: one step per forward.
        _ = sn.forward(x, mode: .train)
        XCTAssertNotEqual(sn.u, u0)
        let u1 = sn.u
        _ = sn.forward(x, mode: .train)
        XCTAssertNotEqual(sn.u, u1)
        // The wrapped layer runs with W/σ (bitwise: the same float64 quotient, rounded once).
        let y = sn.forward(x, mode: .eval)
        let plain = Conv2d(inChannels: 2, outChannels: 3, kernel: 3, rng: &rng)
        plain.weight.value = Tensor(shape: w0.shape, data: w0.data.map { Float(Double($0) / sn.sigma!) })
        plain.bias.value = conv.bias.value
        XCTAssertEqual(plain.forward(x, mode: .eval), y)
        XCTAssertNotEqual(y, yEval)
        // State round trip: another wrapper (other seed, other weights) loads it and agrees.
        var rng2 = SeededRNG(seed: 9)
        let other = SpectralNorm(Conv2d(inChannels: 2, outChannels: 3, kernel: 3, rng: &rng2), seed: 5)
        try other.loadStateDict(Dictionary(uniqueKeysWithValues: sn.stateDict()))
        XCTAssertEqual(other.forward(x, mode: .eval), y)
        var bad = Dictionary(uniqueKeysWithValues: sn.stateDict())
        bad["weight_u"] = Tensor(zeros: [4])
        XCTAssertThrowsError(try other.loadStateDict(bad))
        bad = Dictionary(uniqueKeysWithValues: sn.stateDict())
        bad["weight"] = w0
        XCTAssertThrowsError(try other.loadStateDict(bad))
        // paramGrads false: no parameter gradient, the wrapped weight's scratch gradient stays 0.
        _ = sn.forward(x, mode: .train)
        let dy = randomTensor([2, 3, 4, 4], seed: 1303)
        for p in sn.params { p.grad.zero() }
        let dx = sn.backward(dy, paramGrads: false)
        XCTAssertTrue(sn.params.allSatisfy { $0.grad.data.allSatisfy { $0 == 0 } })
        XCTAssertEqual(sn.backward(dy, paramGrads: true), dx)
        XCTAssertTrue(conv.weight.grad.data.allSatisfy { $0 == 0 })
    }

    // MARK: ResidualBlock / ChannelConcat

    func testResidualBlockGradients() {
        var rng = SeededRNG(seed: 1401)
        let block = ResidualBlock(channels: 3, rng: &rng)
        XCTAssertEqual(block.namedParams.map { $0.name },
                       ["main.0.weight", "main.3.weight"])
        XCTAssertFalse(block.conv1.hasBias || block.conv2.hasBias)
        XCTAssertEqual(block.conv1.padding, 1)
        let x = randomTensor([2, 3, 5, 6], seed: 1402)
        let r = checkLayer(block, input: x, seed: 1403, label: "residual block") { RefResidual(block) }
        assertCovers(r, ["0.weight"], "residual block")
        // x + block(x), layer by layer.
        let y = block.forward(x, mode: .eval)
        let steps: [Layer] = [block.conv1, block.norm1, block.relu, block.conv2, block.norm2]
        let h = steps.reduce(x) { $1.forward($0, mode: .eval) }
        XCTAssertEqual(y.data, zip(x.data, h.data).map { $0 + $1 })
        XCTAssertEqual(block.outputShape([3, 5, 6]), [3, 5, 6])
    }

    /// y = cat(x, f(x)) through `ChannelConcat`: a U-Net-style skip as one layer for the checks.
    private final class SkipConcat: Layer {
        let inner: Layer, cat = ChannelConcat()
        init(_ inner: Layer) { self.inner = inner }
        func forward(_ x: Tensor, mode: Mode) -> Tensor { cat.forward(x, inner.forward(x, mode: mode)) }
        func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
            let (da, db) = cat.backward(dy)
            return ResidualBlock.sum(da, inner.backward(db, paramGrads: paramGrads))
        }
        var params: [Param] { inner.params }
        func outputShape(_ input: [Int]) -> [Int] {
            let o = inner.outputShape(input)
            return [input[0] + o[0]] + Array(input.dropFirst())
        }
    }

    func testChannelConcat() {
        let a = randomTensor([2, 3, 4, 5], seed: 1501), b = randomTensor([2, 2, 4, 5], seed: 1502)
        let cat = ChannelConcat()
        let y = cat.forward(a, b)
        XCTAssertEqual(y.shape, [2, 5, 4, 5])
        for n in 0..<2 { for c in 0..<5 { for i in 0..<20 {
            let v = y.data[(n * 5 + c) * 20 + i]
            XCTAssertEqual(v, c < 3 ? a.data[(n * 3 + c) * 20 + i] : b.data[(n * 2 + c - 3) * 20 + i])
        } } }
        let (da, db) = cat.backward(y)
        XCTAssertEqual(da, a); XCTAssertEqual(db, b)
        XCTAssertEqual(ChannelConcat().forward(Tensor(zeros: [2, 0]), Tensor(repeating: 1, shape: [2, 3])).shape, [2, 3])
        var rng = SeededRNG(seed: 1503)
        let conv = Conv2d(inChannels: 3, outChannels: 2, kernel: 3, padding: 1, rng: &rng)
        let skip = SkipConcat(conv)
        let r = checkLayer(skip, input: a, seed: 1504, label: "skip concat") { RefSkipConcat(RefConv(conv)) }
        assertCovers(r, ["0.weight", "0.bias"], "skip concat")
    }

    // MARK: accumulation

    /// backward(paramGrads: true) adds to `Param.grad` (twice from a start value s: G1 ≈ s + g,
    /// G2 ≈ G1 + g), and paramGrads: false leaves it alone. The bound of one accumulation, with g's
    /// reference bound E: a sum of n terms (`terms` > 0) added to G sums n + 1 terms, so
    /// |result − (G + g)| ≤ E·γ_{n+1}/γ_n + γ_{n+1}·|G| (as LayerGradientTests); a value rounded
    /// once and then added (terms = 0: InstanceNorm2d, SpectralNorm's weight_orig):
    /// |fl(G + fl(g)) − (G + g)| ≤ E + u·(|G| + |g| + E).
    func testParameterGradientsAccumulate() {
        var rng = SeededRNG(seed: 1701)
        let convT = ConvTranspose2d(inChannels: 2, outChannels: 3, kernel: 4, stride: 2, padding: 1, rng: &rng)
        let norm = InstanceNorm2d(channels: 2, affine: true)
        norm.weight!.value = randomTensor([2], seed: 1702, lo: 0.5, hi: 2)
        let lin = Linear(inFeatures: 6, outFeatures: 4, rng: &rng)
        let sn = SpectralNorm(lin, seed: 1703)
        let cases: [(Layer, Tensor, () -> RefLayer)] = [
            (convT, randomTensor([2, 2, 3, 3], seed: 1704), { RefConvTranspose(convT) }),
            (norm, randomTensor([2, 2, 3, 4], seed: 1705), { RefInstanceNorm(norm) }),
            (sn, randomTensor([3, 6], seed: 1706), { RefSpectralNorm(sn, inner: RefLinear(lin)) }),
        ]
        let u = Rounding.float32
        for (layer, x, makeRef) in cases {
            let y = layer.forward(x, mode: .train)
            let ref = makeRef()
            _ = ref.forward(Bounded(exact: x), u: u)
            let dy = randomTensor(y.shape, seed: 1707)
            _ = ref.backward(Bounded(exact: dy), u: u)
            let start: Float = 0.25
            for p in layer.params { p.grad = Tensor(repeating: start, shape: p.value.shape) }
            let dx1 = layer.backward(dy, paramGrads: true)
            let once = layer.params.map { $0.grad }
            let dx2 = layer.backward(dy, paramGrads: true)
            for ((p, g1), r) in zip(zip(layer.params, once), ref.grads) {
                for i in 0..<g1.count {
                    func allowed(_ G: Double) -> Double {
                        if r.terms > 0 { return r.e[i] * gamma(r.terms + 1) / gamma(r.terms) + gamma(r.terms + 1) * abs(G) }
                        return r.e[i] + u * (abs(G) + abs(r.v[i]) + r.e[i])
                    }
                    let drift = Double(p.grad.data[i]) - Double(start) - 2 * (Double(g1.data[i]) - Double(start))
                    XCTAssertLessThanOrEqual(abs(drift), (allowed(Double(start)) + allowed(Double(g1.data[i]))) * boundSlack,
                                             "\(type(of: layer)) \(p.name)[\(i)]")
                }
            }
            let twice = layer.params.map { $0.grad }
            XCTAssertEqual(layer.backward(dy, paramGrads: false), dx1, "\(type(of: layer))")
            XCTAssertEqual(layer.params.map { $0.grad }, twice, "paramGrads: false must not touch Param.grad")
            XCTAssertEqual(dx1, dx2)
        }
    }

    // MARK: threads

    func testForwardAndInputGradientDoNotDependOnThreadCount() {
        var rng = SeededRNG(seed: 1601)
        let layers: [(Layer, Tensor)] = [
            (ConvTranspose2d(inChannels: 3, outChannels: 4, kernel: 4, stride: 2, padding: 1, outputPadding: 1, rng: &rng),
             randomTensor([5, 3, 6, 7], seed: 1602)),
            (InstanceNorm2d(channels: 3, affine: true), randomTensor([5, 3, 6, 7], seed: 1603)),
            (ResidualBlock(channels: 3, rng: &rng), randomTensor([5, 3, 6, 7], seed: 1604)),
            (Sigmoid(), randomTensor([5, 3, 6, 7], seed: 1605)),
        ]
        let saved = ParallelFor.computeThreads
        defer { ParallelFor.setComputeThreads(saved) }
        for (l, x) in layers {
            ParallelFor.setComputeThreads(1)
            let y = l.forward(x, mode: .eval)
            let dy = randomTensor(y.shape, seed: 1606)
            let dx = l.backward(dy, paramGrads: false)
            for threads in [2, 3] {
                ParallelFor.setComputeThreads(threads)
                assertSameBits(l.forward(x, mode: .eval).data, y.data, "\(type(of: l)) forward, \(threads) threads")
                assertSameBits(l.backward(dy, paramGrads: false).data, dx.data, "\(type(of: l)) ∂x, \(threads) threads")
            }
        }
    }
}
