import XCTest
@testable import SAATCore

final class ModelTests: XCTestCase {
    /// cnn-small with a larger hash layer so tanh is not flat; deterministic.
    func makeModel(bits: Int = 8, seed: UInt64 = 0) throws -> HashingModel {
        let m = try HashingModel(backbone: .cnnSmall, bits: bits, seed: seed, mean: [0.4, 0.5, 0.6], std: [0.5, 0.25, 0.3])
        for p in m.namedParams where p.name == "hash_layer.weight" {
            for i in 0..<p.param.value.count { p.param.value.data[i] *= 4 }
        }
        // Non-zero biases: with Kaiming's zero biases an all-zero patch gives a pre-activation of
        // exactly 0, a ReLU kink every finite difference straddles.
        var rng = SeededRNG(seed: seed &+ 77)
        for p in m.params where p.name == "bias" {
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-0.05, 0.05) }
        }
        return m
    }

    func testInputGradientMatchesFiniteDifferences() throws {
        let m = try makeModel()
        let x = randomTensor([2, 3, 32, 32], seed: 5, lo: 0.05, hi: 0.95)
        let g = randomTensor([2, 8], seed: 6)
        let alpha: Float = 0.6
        _ = m.forward(x, alpha: alpha)
        let grad = m.backward(g, paramGrads: false)
        let f: (Tensor) -> Double = { xx in
            let y = m.forward(xx, alpha: alpha)
            return zip(y.data, g.data).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        }
        // The network is piecewise smooth (ReLU, max-pool): a probe can straddle a kink or a
        // near-tie of a max-pool window at every step size. A systematic error fails every probe;
        // a kink fails one: require 10 of 12 probes to match the difference at some step size.
        // (tests/test_models.py checks 150 random pixels against a float64 numpy reference.)
        let idx = [0, 17, 1024 + 33, 2048 + 500, 2548, 3072 + 1023, 4000, 4500, 5000, 5555, 6000, 6143]
        let diffs = [2e-3, 5e-4, 1e-4].map { h in centralDifference(x, h: Float(h), indices: idx, f) }
        var matched = 0
        for i in idx {
            let a = Double(grad.data[i])
            if diffs.contains(where: { abs(a - $0[i]!) <= 2e-3 + 3e-2 * abs($0[i]!) }) { matched += 1 }
        }
        XCTAssertGreaterThanOrEqual(matched, 10, "input gradient disagrees with finite differences")
    }

    func testParameterGradientsMatchFiniteDifferences() throws {
        let m = try makeModel(bits: 6, seed: 2)
        let x = randomTensor([2, 3, 32, 32], seed: 7, lo: 0, hi: 1)
        let g = randomTensor([2, 6], seed: 8)
        m.zeroGrad()
        _ = m.forward(x)
        _ = m.backward(g, paramGrads: true)
        for (name, p) in m.namedParams {
            let analytic = p.grad
            let probe = [0, p.value.count / 3, p.value.count - 1]
            for i in probe {
                let orig = p.value.data[i]
                let h: Float = 1e-2 * max(0.01, abs(orig))
                func val() -> Double {
                    let y = m.forward(x)
                    return zip(y.data, g.data).reduce(0.0) { $0 + Double($1.0 * $1.1) }
                }
                p.value.data[i] = orig + h; let fp = val()
                p.value.data[i] = orig - h; let fm = val()
                p.value.data[i] = orig
                assertClose(Double(analytic.data[i]), (fp - fm) / Double(2 * h), rtol: 5e-2, atol: 2e-3, "\(name)[\(i)]")
            }
        }
    }

    func testParamGradsAccumulateAndInputPathSkipsThem() throws {
        let m = try makeModel(bits: 4, seed: 3)
        let x = randomTensor([1, 3, 32, 32], seed: 1, lo: 0, hi: 1), g = randomTensor([1, 4], seed: 2)
        m.zeroGrad()
        _ = m.forward(x); _ = m.backward(g, paramGrads: true)
        let once = m.params.map { $0.grad }
        _ = m.forward(x); _ = m.backward(g, paramGrads: true)
        for (p, o) in zip(m.params, once) {
            for i in stride(from: 0, to: o.count, by: max(1, o.count / 7)) {
                XCTAssertEqual(p.grad.data[i], 2 * o.data[i], accuracy: 1e-5 + 1e-4 * abs(o.data[i]))
            }
        }
        _ = m.forward(x); _ = m.backward(g, paramGrads: false)
        for (p, o) in zip(m.params, once) { XCTAssertEqual(p.grad.data[0], 2 * o.data[0], accuracy: 1e-5 + 1e-4 * abs(o.data[0])) }
    }

    /// The fused conv blocks (default) against the layer-by-layer path: bit-identical outputs,
    /// input gradients and parameter gradients on every backbone (alexnet/vgg11 on one image).
    func testFusedBlocksMatchLayerByLayer() throws {
        for (backbone, n) in [(Backbone.cnnSmall, 5), (.alexnet, 1), (.vgg11, 1)] {
            let m = try HashingModel(backbone: backbone, bits: 8, seed: 1)
            let x = randomTensor([n] + backbone.inputShape, seed: 3, lo: 0, hi: 1)
            let g = randomTensor([n, 8], seed: 4)
            var out: [(Tensor, Tensor, [Tensor])] = []
            for fused in [true, false] {
                m.fuseBlocks = fused
                m.zeroGrad()
                let y = m.forward(x, alpha: 0.7)
                let dx = m.backward(g, paramGrads: true)
                out.append((y, dx, m.params.map(\.grad)))
            }
            XCTAssertEqual(out[0].0, out[1].0, "\(backbone) forward")
            XCTAssertEqual(out[0].1, out[1].1, "\(backbone) input gradient")
            XCTAssertEqual(out[0].2, out[1].2, "\(backbone) parameter gradients")
        }
    }

    func testPredictChunksAgreeWithOneBatch() throws {
        let m = try makeModel(bits: 8, seed: 4)
        let n = 300   // > one inference chunk
        let x = randomTensor([n, 3, 32, 32], seed: 9, lo: 0, hi: 1)
        var out = [Float](repeating: 0, count: n * 8)
        try x.data.withUnsafeBufferPointer { try m.predict(images: $0.baseAddress!, n: n, out: &out) }
        let tail = m.forward(x.slice(290, 10))
        for i in 0..<80 { XCTAssertEqual(out[290 * 8 + i], tail.data[i], accuracy: 1e-5) }
    }

    func testStateDictIsStrict() throws {
        let m = try makeModel()
        var d = Dictionary(uniqueKeysWithValues: m.stateDict())
        XCTAssertEqual(d.count, 8)
        try m.loadStateDict(d)
        d["hash_layer.bias"] = Tensor(zeros: [9])
        XCTAssertThrowsError(try m.loadStateDict(d))
        d.removeValue(forKey: "hash_layer.bias")
        XCTAssertThrowsError(try m.loadStateDict(d))
    }

    func testConstructorValidates() {
        XCTAssertThrowsError(try HashingModel(backbone: .cnnSmall, bits: 0))
        XCTAssertThrowsError(try HashingModel(backbone: .cnnSmall, bits: 8, std: [1, 0, 1]))
        XCTAssertThrowsError(try HashingModel(backbone: .cnnSmall, bits: 8, mean: [0, 0]))
    }
}

final class OptimizerTests: XCTestCase {
    func testSGDMomentumAndWeightDecayFollowPyTorch() throws {
        let p = Param("w", Tensor(shape: [2], data: [1, -2]))
        let opt = try SGD(params: [p], learningRate: 0.1, momentum: 0.9, weightDecay: 0.5)
        p.grad = Tensor(shape: [2], data: [0.2, 0.4])
        opt.step()   // g = grad + 0.5·θ = [0.7, -0.6]; v = g; θ = θ − 0.1·v
        XCTAssertEqual(p.value.data[0], 0.93, accuracy: 1e-6)
        XCTAssertEqual(p.value.data[1], -1.94, accuracy: 1e-6)
        opt.step()   // g = [0.2 + 0.465, 0.4 − 0.97]; v = 0.9·v + g
        let g0: Float = 0.2 + 0.5 * 0.93, g1: Float = 0.4 + 0.5 * -1.94
        XCTAssertEqual(p.value.data[0], 0.93 - 0.1 * (0.9 * 0.7 + g0), accuracy: 1e-6)
        XCTAssertEqual(p.value.data[1], -1.94 - 0.1 * (0.9 * -0.6 + g1), accuracy: 1e-6)
        let saved = opt.saveState()
        let opt2 = try SGD(params: [p], learningRate: 0.1, momentum: 0.9, weightDecay: 0.5)
        try opt2.loadState(saved)
        XCTAssertEqual(opt2.saveState(), saved)
    }

    func testAdamFirstStepsFollowPyTorch() throws {
        let p = Param("w", Tensor(shape: [1], data: [0.5]))
        let opt = try Adam(params: [p], learningRate: 0.01, beta1: 0.9, beta2: 0.999)
        p.grad = Tensor(shape: [1], data: [2])
        opt.step()   // first step moves by lr·sign(g) (bias-corrected m/√v = 1)
        XCTAssertEqual(p.value.data[0], 0.49, accuracy: 1e-6)
        p.grad = Tensor(shape: [1], data: [-1])
        opt.step()
        let m = 0.9 * (0.1 * 2) + 0.1 * -1.0, v = 0.999 * (0.001 * 4) + 0.001 * 1.0
        let step = 0.01 * (m / (1 - 0.81)) / ((v / (1 - 0.998001)).squareRoot() + 1e-8)
        XCTAssertEqual(Double(p.value.data[0]), 0.49 - step, accuracy: 1e-6)
    }

    func testMultiStepSchedule() {
        let s = MultiStepSchedule(base: 1, fractions: [0.5, 0.75], total: 100, gamma: 0.1)
        XCTAssertEqual(s.milestones, [50, 75])
        XCTAssertEqual(s.rate(at: 49), 1)
        XCTAssertEqual(s.rate(at: 50), 0.1, accuracy: 1e-7)
        XCTAssertEqual(s.rate(at: 99), 0.01, accuracy: 1e-8)
    }
}
