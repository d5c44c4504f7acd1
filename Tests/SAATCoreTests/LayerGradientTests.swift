import XCTest
@testable import SAATCore

/// Finite-difference checks of every layer's input and parameter gradients (see GradCheck.swift
/// for the tolerance argument), plus initialisation, modes, shapes and accumulation semantics.
final class LayerGradientTests: XCTestCase {
    /// Asserts that every check ran at least one probe and recorded no failure.
    private func assertClean(_ r: [String: GradCheckReport], _ names: [String], _ label: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(r.keys), Set(names), label, file: file, line: line)
        for (k, v) in r {
            XCTAssertGreaterThan(v.probes, 0, "\(label) \(k)", file: file, line: line)
            XCTAssertEqual(v.failures, 0, "\(label) \(k)", file: file, line: line)
        }
    }

    // MARK: Conv2d

    func testConv2dGradients() {
        // (kernel, stride, padding) over N=2, C=3, 7×7 (and one 7×6 input to catch H/W mix-ups).
        let configs: [(Int, Int, Int, Int)] = [(3, 1, 0, 7), (3, 2, 1, 7), (5, 1, 1, 7), (5, 2, 0, 7),
                                               (3, 1, 1, 6), (5, 2, 2, 6), (1, 1, 0, 7)]
        for (i, (k, s, p, w)) in configs.enumerated() {
            var rng = SeededRNG(seed: UInt64(100 + i))
            let conv = Conv2d(inChannels: 3, outChannels: 4, kernel: k, stride: s, padding: p, rng: &rng)
            let x = randomTensor([2, 3, 7, w], seed: UInt64(200 + i))
            let r = checkLayerGradients(conv, input: x, seed: UInt64(300 + i))
            assertClean(r, ["input", "weight", "bias"], "conv k\(k) s\(s) p\(p) w\(w)")
        }
    }

    func testConv2dForwardMatchesDirectSum() {
        var rng = SeededRNG(seed: 5)
        let conv = Conv2d(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1, rng: &rng)
        let x = randomTensor([2, 2, 5, 6], seed: 6)
        let y = conv.forward(x, mode: .eval)
        XCTAssertEqual(y.shape, [2, 3, 3, 3])
        let w = conv.weight.value.data, b = conv.bias.value.data
        for n in 0..<2 { for o in 0..<3 { for i in 0..<3 { for j in 0..<3 {
            var s = Double(b[o])
            for c in 0..<2 { for u in 0..<3 { for v in 0..<3 {
                let h = i * 2 - 1 + u, ww = j * 2 - 1 + v
                if h < 0 || h >= 5 || ww < 0 || ww >= 6 { continue }
                s += Double(w[((o * 2 + c) * 3 + u) * 3 + v]) * Double(x.data[((n * 2 + c) * 5 + h) * 6 + ww])
            } } }
            XCTAssertEqual(Double(y.data[((n * 3 + o) * 3 + i) * 3 + j]), s, accuracy: 1e-5)
        } } } }
    }

    // MARK: Linear

    func testLinearGradients() {
        var rng = SeededRNG(seed: 11)
        let lin = Linear(inFeatures: 13, outFeatures: 5, rng: &rng)
        let r = checkLayerGradients(lin, input: randomTensor([3, 13], seed: 12))
        assertClean(r, ["input", "weight", "bias"], "linear")
        // Wide output (> 16 lanes) exercises the SIMD bias paths.
        let wide = Linear(inFeatures: 7, outFeatures: 37, rng: &rng)
        assertClean(checkLayerGradients(wide, input: randomTensor([2, 7], seed: 13)),
                    ["input", "weight", "bias"], "linear wide")
    }

    func testLinearForwardValues() {
        var rng = SeededRNG(seed: 21)
        let lin = Linear(inFeatures: 19, outFeatures: 18, rng: &rng)
        let x = randomTensor([4, 19], seed: 22)
        let y = lin.forward(x, mode: .eval)
        XCTAssertEqual(y.shape, [4, 18])
        for n in 0..<4 {
            for o in 0..<18 {
                var s = Double(lin.bias.value.data[o])
                for i in 0..<19 { s += Double(x.data[n * 19 + i]) * Double(lin.weight.value.data[o * 19 + i]) }
                XCTAssertEqual(Double(y.data[n * 18 + o]), s, accuracy: 1e-5)
            }
        }
    }

    // MARK: MaxPool2d / ReLU / Flatten / Dropout

    /// Distinct values spaced 0.05 apart (> 2·eps), shuffled: no ties, and no ±eps probe changes an argmax.
    private func tieFreeInput(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRNG(seed: seed)
        let n = shape.reduce(1, *)
        let perm = rng.permutation(n)
        return Tensor(shape: shape, data: perm.map { Float($0) * 0.05 - Float(n) * 0.025 })
    }

    func testMaxPool2dGradients() {
        for (k, s) in [(2, 2), (3, 2), (3, 1), (2, 3)] {
            let pool = MaxPool2d(kernel: k, stride: s)
            let r = checkLayerGradients(pool, input: tieFreeInput([2, 3, 7, 7], seed: UInt64(k * 10 + s)))
            assertClean(r, ["input"], "maxpool k\(k) s\(s)")
        }
    }

    func testReLUGradients() {
        // |x| ≥ 0.1 keeps every probe x ± 0.01 on one side of the kink.
        var x = randomTensor([2, 3, 7, 7], seed: 31)
        for i in 0..<x.count { x.data[i] = x.data[i] < 0 ? x.data[i] - 0.1 : x.data[i] + 0.1 }
        assertClean(checkLayerGradients(ReLU(), input: x), ["input"], "relu")
        let y = ReLU().forward(x, mode: .train)
        for i in 0..<x.count { XCTAssertEqual(y.data[i], max(x.data[i], 0)) }
    }

    func testFlattenGradientsAndShape() {
        let f = Flatten()
        let x = randomTensor([2, 3, 4, 5], seed: 41)
        let y = f.forward(x, mode: .train)
        XCTAssertEqual(y.shape, [2, 60])
        XCTAssertEqual(y.data, x.data)
        assertClean(checkLayerGradients(f, input: x), ["input"], "flatten")
        XCTAssertEqual(f.outputShape([3, 4, 5]), [60])
    }

    func testDropoutGradientsWithFixedMask() {
        let drop = Dropout(p: 0.4, seed: 51)
        let saved = drop.rng
        // Replaying the rng state makes every re-evaluation draw the same mask.
        let r = checkLayerGradients(drop, input: randomTensor([2, 3, 7, 7], seed: 52), mode: .train,
                                    beforeForward: { drop.rng = saved })
        assertClean(r, ["input"], "dropout")
        let m = drop.mask!
        XCTAssertTrue(m.data.contains(0) && m.data.contains(1 / 0.6), "mask has both dropped and kept entries")
    }

    func testDropoutModesAndStatistics() {
        let x = randomTensor([4, 1000], seed: 61, lo: 0.5, hi: 1.5)
        // Eval mode and p = 0: identity, gradient passes through, no rng draw.
        let d = Dropout(p: 0.3, seed: 1)
        let before = d.rng
        XCTAssertEqual(d.forward(x, mode: .eval), x)
        XCTAssertEqual(d.backward(x, paramGrads: true), x)
        XCTAssertEqual(d.rng, before)
        XCTAssertEqual(Dropout(p: 0, seed: 1).forward(x, mode: .train), x)
        // Train mode: y ∈ {0, x/(1−p)}, drop fraction ≈ p (4000 draws: σ ≈ 0.007).
        let y = d.forward(x, mode: .train)
        var dropped = 0
        for i in 0..<x.count {
            if y.data[i] == 0 { dropped += 1 } else { XCTAssertEqual(y.data[i], x.data[i] / 0.7, accuracy: 1e-6) }
        }
        XCTAssertEqual(Double(dropped) / Double(x.count), 0.3, accuracy: 0.03)
        // The mask follows the documented rule: kept iff (next() >> 40) / 2²⁴ ≥ p.
        var replay = before
        for i in 0..<x.count {
            let kept = replay.uniform() >= 0.3
            XCTAssertEqual(y.data[i] != 0, kept, "element \(i)")
        }
        XCTAssertEqual(replay, d.rng)
        // Next forward draws a new mask; same seed gives the same mask.
        XCTAssertNotEqual(d.forward(x, mode: .train), y)
        XCTAssertEqual(Dropout(p: 0.3, seed: 1).forward(x, mode: .train), y)
        // p = 1 drops everything.
        XCTAssertTrue(Dropout(p: 1, seed: 3).forward(x, mode: .train).data.allSatisfy { $0 == 0 })
    }

    // MARK: Accumulation, input-only path, init, shapes

    func testParamGradsAccumulateAndInputOnlyPath() {
        var rng = SeededRNG(seed: 71)
        let layers: [(Layer, Tensor)] = [
            (Conv2d(inChannels: 3, outChannels: 4, kernel: 3, stride: 2, padding: 1, rng: &rng), randomTensor([2, 3, 7, 7], seed: 72)),
            (Linear(inFeatures: 9, outFeatures: 6, rng: &rng), randomTensor([3, 9], seed: 73)),
        ]
        for (layer, x) in layers {
            let y = layer.forward(x, mode: .train)
            let dy = randomTensor(y.shape, seed: 74)
            for p in layer.params { p.grad = Tensor(repeating: 0.25, shape: p.value.shape) }
            let dx1 = layer.backward(dy, paramGrads: true)
            let once = layer.params.map { $0.grad }
            let dx2 = layer.backward(dy, paramGrads: true)
            for (p, g1) in zip(layer.params, once) {
                for i in 0..<g1.count {
                    // g2 − 0.25 = 2·(g1 − 0.25): the second call added the same gradient again.
                    XCTAssertEqual(p.grad.data[i] - 0.25, 2 * (g1.data[i] - 0.25), accuracy: 1e-5, "\(p.name)[\(i)]")
                }
            }
            let twice = layer.params.map { $0.grad }
            let dx3 = layer.backward(dy, paramGrads: false)
            XCTAssertEqual(layer.params.map { $0.grad }, twice, "paramGrads: false must not touch Param.grad")
            XCTAssertEqual(dx1, dx2)
            XCTAssertEqual(dx1, dx3)
        }
    }

    func testDefaultInitialisationOrderAndBounds() {
        var rng = SeededRNG(seed: 81)
        let conv = Conv2d(inChannels: 16, outChannels: 32, kernel: 3, rng: &rng)
        var replay = SeededRNG(seed: 81)
        let bound = 1 / Float(16 * 9).squareRoot()
        for v in conv.weight.value.data { XCTAssertEqual(v, replay.uniform(-bound, bound)) }
        for v in conv.bias.value.data { XCTAssertEqual(v, replay.uniform(-bound, bound)) }
        XCTAssertEqual(replay, rng, "init consumes exactly weight then bias draws")
        XCTAssertEqual(conv.weight.value.shape, [32, 16, 3, 3])
        XCTAssertEqual(conv.bias.value.shape, [32])
        XCTAssertEqual(conv.params.map { $0.name }, ["weight", "bias"])
        // U(−a, a): mean 0, variance a²/3 (4608 draws).
        let w = conv.weight.value.data.map(Double.init)
        let mean = w.reduce(0, +) / Double(w.count)
        let variance = w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count)
        XCTAssertEqual(mean, 0, accuracy: 0.01 * Double(bound) * 3)
        XCTAssertEqual(variance, Double(bound * bound) / 3, accuracy: 0.05 * Double(bound * bound) / 3)
        XCTAssertLessThanOrEqual(w.map(abs).max()!, Double(bound))
        XCTAssertTrue(conv.weight.grad.data.allSatisfy { $0 == 0 })

        let lin = Linear(inFeatures: 100, outFeatures: 10, rng: &rng)
        XCTAssertEqual(lin.weight.value.shape, [10, 100])
        XCTAssertEqual(lin.bias.value.shape, [10])
        XCTAssertLessThanOrEqual(lin.weight.value.data.map(abs).max()!, 0.1)
        XCTAssertLessThanOrEqual(lin.bias.value.data.map(abs).max()!, 0.1)
    }

    func testOutputShapes() {
        var rng = SeededRNG(seed: 91)
        let conv = Conv2d(inChannels: 3, outChannels: 64, kernel: 11, stride: 4, padding: 2, rng: &rng)
        XCTAssertEqual(conv.outputShape([3, 224, 224]), [64, 55, 55])     // AlexNet conv1
        XCTAssertEqual(MaxPool2d(kernel: 3, stride: 2).outputShape([64, 55, 55]), [64, 27, 27])
        XCTAssertEqual(MaxPool2d(kernel: 2, stride: 2).outputShape([8, 7, 7]), [8, 3, 3])  // floor mode
        XCTAssertEqual(ReLU().outputShape([5, 6]), [5, 6])
        XCTAssertEqual(Dropout(p: 0.5, seed: 0).outputShape([4096]), [4096])
        XCTAssertEqual(Flatten().outputShape([256, 6, 6]), [9216])
        XCTAssertEqual(Linear(inFeatures: 9216, outFeatures: 4, rng: &rng).outputShape([9216]), [4])
        // outputShape agrees with forward.
        let small = Conv2d(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1, rng: &rng)
        XCTAssertEqual(Array(small.forward(Tensor(zeros: [1, 2, 8, 5]), mode: .eval).shape.dropFirst()),
                       small.outputShape([2, 8, 5]))
    }

    func testSmallNetworkChainGradient() {
        // Conv → ReLU → MaxPool → Flatten → Dropout → Linear, composed by hand: the chain rule across
        // layers (what the model will do). ReLU kinks are possible here, so eps is small (1e-3) and
        // the tolerance looser; a probe is robust unless a pre-activation lies within 1e-3 of 0.
        var rng = SeededRNG(seed: 101)
        let drop = Dropout(p: 0.25, seed: 102)
        let saved = drop.rng
        let layers: [Layer] = [Conv2d(inChannels: 3, outChannels: 4, kernel: 3, padding: 1, rng: &rng), ReLU(),
                               MaxPool2d(kernel: 2, stride: 2), Flatten(), drop,
                               Linear(inFeatures: 36, outFeatures: 5, rng: &rng)]
        func run(_ x: Tensor) -> Tensor {
            drop.rng = saved
            return layers.reduce(x) { $1.forward($0, mode: .train) }
        }
        let x = randomTensor([2, 3, 6, 6], seed: 103)
        let y = run(x)
        let dy = randomTensor(y.shape, seed: 104)
        var g = dy
        for l in layers.reversed() { g = l.backward(g, paramGrads: false) }
        let r = gradCheck("chain input", at: x, analytic: g, eps: 1e-3, atol: 1e-2, rtol: 2e-2) { dotLoss(run($0), dy) }
        XCTAssertEqual(r.failures, 0)
        XCTAssertEqual(r.probes, x.count)
    }

    /// The fused conv → ReLU (→ max-pool) block as one `Layer`, for the finite-difference checker.
    private final class FusedBlock: Layer {
        let conv: Conv2d, pool: MaxPool2d?
        init(_ conv: Conv2d, _ pool: MaxPool2d?) { self.conv = conv; self.pool = pool }
        func forward(_ x: Tensor, mode: Mode) -> Tensor { conv.forwardBlock(x, pool: pool) }
        func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor { conv.backwardBlock(dy, paramGrads: paramGrads) }
        var params: [Param] { conv.params }
        func outputShape(_ input: [Int]) -> [Int] { pool?.outputShape(conv.outputShape(input)) ?? conv.outputShape(input) }
    }

    func testFusedConvBlockGradients() {
        // Conv → ReLU → pool (2×2/2, and alexnet's overlapping 3×3/2) and conv → ReLU alone. Kinks
        // (ReLU at 0, pool near-ties) are possible, so eps is small and the tolerance looser, as
        // in testSmallNetworkChainGradient; weights and inputs are checked on every probe.
        for (i, pool) in [MaxPool2d(kernel: 2, stride: 2), MaxPool2d(kernel: 3, stride: 2), nil].enumerated() {
            var rng = SeededRNG(seed: UInt64(400 + i))
            let conv = Conv2d(inChannels: 3, outChannels: 4, kernel: 3, padding: 1, rng: &rng)
            // Most units active; without a pool every output counts and a weight probe moves all
            // of them, so that case gets a bias that keeps each pre-activation away from the ReLU
            // kink (its mask logic is covered by the exact comparison below).
            for j in 0..<conv.bias.value.count { conv.bias.value.data[j] = pool == nil ? 3 : 0.3 }
            let block = FusedBlock(conv, pool)
            let r = checkLayerGradients(block, input: randomTensor([2, 3, 7, 7], seed: UInt64(410 + i)),
                                        eps: 1e-3, atol: 1e-2, rtol: 2e-2, seed: UInt64(420 + i))
            assertClean(r, ["input", "weight", "bias"], "fused block \(i)")
            // Same values and gradients as the three layers run one by one.
            let x = randomTensor([2, 3, 7, 7], seed: UInt64(430 + i))
            let layers: [Layer] = [conv, ReLU()] + (pool.map { [$0] } ?? [])
            let yRef = layers.reduce(x) { $1.forward($0, mode: .eval) }
            let dy = randomTensor(yRef.shape, seed: UInt64(440 + i))
            conv.weight.grad.zero(); conv.bias.grad.zero()
            let dxRef = layers.reversed().reduce(dy) { $1.backward($0, paramGrads: true) }
            let gwRef = conv.weight.grad, gbRef = conv.bias.grad
            conv.weight.grad.zero(); conv.bias.grad.zero()
            let y = block.forward(x, mode: .eval)
            let dx = block.backward(dy, paramGrads: true)
            XCTAssertEqual(y, yRef, "fused forward \(i)")
            XCTAssertEqual(dx, dxRef, "fused ∂x \(i)")
            XCTAssertEqual(conv.weight.grad, gwRef, "fused ∂W \(i)")
            XCTAssertEqual(conv.bias.grad, gbRef, "fused ∂b \(i)")
        }
    }
}
