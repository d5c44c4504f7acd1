import XCTest
import NumericBounds
@testable import SAATCore

final class ModelTests: XCTestCase {
    /// cnn-small with a larger hash layer so tanh is not flat, non-zero biases, non-trivial
    /// normalisation; deterministic.
    func makeModel(bits: Int = 8, seed: UInt64 = 0) throws -> HashingModel {
        let m = try HashingModel(backbone: .cnnSmall, bits: bits, seed: seed, mean: [0.4, 0.5, 0.6], std: [0.5, 0.25, 0.3])
        for p in m.namedParams where p.name == "hash_layer.weight" {
            for i in 0..<p.param.value.count { p.param.value.data[i] *= 4 }
        }
        var rng = SeededRNG(seed: seed &+ 77)
        for p in m.params where p.name == "bias" {
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-0.05, 0.05) }
        }
        return m
    }

    /// The model's float32 glue around its layers, written from the formulas (same operations as
    /// `HashingModel`, so the composition must match it bit for bit): x̂ = (x − mean)·(1/std) per
    /// channel and, backwards, g·(1/std).
    private func normaliseStep(_ m: HashingModel) -> ProductionStep {
        let mean = m.mean, inv = m.std.map { 1 / $0 }
        func apply(_ t: Tensor, _ f: (Float, Int) -> Float) -> Tensor {
            var out = t
            let plane = t.shape[2] * t.shape[3], c = t.shape[1]
            for i in 0..<t.count { out.data[i] = f(t.data[i], (i / plane) % c) }
            return out
        }
        return ProductionStep(name: "normalise", reference: { RefNormalize(mean: m.mean, std: m.std) },
                              forward: { apply($0) { v, c in (v - mean[c]) * inv[c] } },
                              backward: { apply($0) { g, c in g * inv[c] } })
    }

    /// F = tanh(α·z); backwards g·(α·(1 − F²)).
    private func tanhStep(alpha: Float) -> ProductionStep {
        var out = Tensor(zeros: [0])
        return ProductionStep(name: "tanh", reference: { RefTanh(alpha: alpha) },
                              forward: { z in out = Tensor(shape: z.shape, data: z.data.map { tanhf(alpha * $0) }); return out },
                              backward: { g in Tensor(shape: g.shape, data: zip(g.data, out.data).map { $0 * (alpha * (1 - $1 * $1)) }) })
    }

    /// A whole model, step by step: normalisation, every layer and the tanh head, each checked
    /// locally against its float64 reference within its float32 bounds (ReferenceNetwork.swift);
    /// the composition equals `forward`/`backward` bit for bit (fused blocks included); and a
    /// second backward accumulates. cnn-small (α = 0.6, normalisation) and alexnet in train mode
    /// (dropout masks, 11×11/4 and 5×5 convolutions, overlapping pools; one image). vgg11 has no
    /// layer kind these do not cover (3×3 convolutions, 2×2 pools, linear, dropout).
    func testModelMatchesFloat64ReferenceWithinErrorBounds() throws {
        let cases: [(HashingModel, Int, Mode, Float)] = [
            (try makeModel(bits: 8, seed: 2), 3, .eval, 0.6),
            (try HashingModel(backbone: .alexnet, bits: 16, seed: 3), 1, .train, 1),
        ]
        for (m, n, mode, alpha) in cases {
            let label = "\(m.backbone.rawValue) \(mode)"
            m.mode = mode
            let x = randomTensor([n] + m.inputShape, seed: 7, lo: 0, hi: 1)
            let g = randomTensor([n, m.bits], seed: 8)
            let masks = m.dropoutStates   // replayed so every forward below draws the same masks
            let steps = [normaliseStep(m)] + m.layers.map { ProductionStep($0.layer, name: $0.name, mode: mode) }
                + [tanhStep(alpha: alpha)]
            m.zeroGrad()
            let check = assertChainMatchesReference(steps, x: x, dy: g, label: label)
            XCTAssertEqual(Set(check.reports.keys), Set(["output", "input"] + m.namedParams.map(\.name)))
            let composed = m.params.map(\.grad)
            m.zeroGrad()
            m.dropoutStates = masks
            XCTAssertEqual(m.forward(x, alpha: alpha), check.y, "\(label): forward = its steps")
            let dx = m.backward(g, paramGrads: true)
            XCTAssertEqual(dx, check.dx, "\(label): backward = its steps")
            XCTAssertEqual(m.params.map(\.grad), composed, "\(label): parameter gradients = its steps'")
            // Accumulation: a second backward adds the same gradient. g1 is within E of the step's
            // exact gradient g; the second call sums n + 1 terms (g1 included):
            // |g2 − 2g| ≤ E + E·γ_{n+1}/γ_n + γ_{n+1}·|g1|.
            m.dropoutStates = masks
            _ = m.forward(x, alpha: alpha)
            _ = m.backward(g, paramGrads: true)
            for ((p, g1), rg) in zip(zip(m.params, composed), check.references.flatMap(\.grads)) {
                let grow = gamma(rg.terms + 1) / gamma(rg.terms)
                for i in stride(from: 0, to: g1.count, by: max(1, g1.count / 500)) {
                    let bound = rg.e[i] * (1 + grow) + gamma(rg.terms + 1) * abs(Double(g1.data[i]))
                    XCTAssertLessThanOrEqual(abs(Double(p.grad.data[i]) - 2 * rg.v[i]), bound * boundSlack,
                                             "\(label) accumulated \(p.name)[\(i)]")
                }
            }
            // The input-gradient path leaves parameter gradients alone.
            let twice = m.params.map { $0.grad }
            m.dropoutStates = masks
            _ = m.forward(x, alpha: alpha)
            XCTAssertEqual(m.backward(g, paramGrads: false), dx, "\(label) input-only path")
            XCTAssertEqual(m.params.map { $0.grad }, twice, "\(label) paramGrads: false")
        }
    }

    /// The reference model's own gradients against float64 central differences (cnn-small with
    /// normalisation and tanh; the layer tests cover dropout and alexnet's layer kinds).
    func testReferenceModelGradientsMatchFiniteDifferences() throws {
        let m = try makeModel(bits: 6, seed: 4)
        let x = randomTensor([1, 3, 32, 32], seed: 9, lo: 0, hi: 1)
        checkReferenceByFiniteDifferences(RefChain.model(m, alpha: 0.6), x: x, dy: randomTensor([1, 6], seed: 10),
                                          probes: 6, seed: 11, label: "cnn-small reference")
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
        // predict runs chunks of `imagesPerChunk` images: each equals a forward of that chunk bit for
        // bit (another batch size may run other OpenBLAS micro-kernels, so only the same chunks compare).
        let chunk = m.imagesPerChunk(gradients: false)
        XCTAssertLessThan(chunk, n)
        XCTAssertEqual(Array(out[0..<(chunk * 8)]), m.forward(x.slice(0, chunk)).data, "first chunk")
        XCTAssertEqual(Array(out[(chunk * 8)...]), m.forward(x.slice(chunk, n - chunk)).data, "last chunk")
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
