import XCTest
import NumericBounds
import HashKernels
@testable import SAATCore

/// Every layer's forward, input and parameter gradients against the float64 reference within its
/// float32 error bounds, and the reference against float64 central differences (GradCheck.swift);
/// plus initialisation, modes, shapes and accumulation semantics.
final class LayerGradientTests: XCTestCase {

    // MARK: Conv2d

    func testConv2dGradients() {
        // (kernel, stride, padding, width) over N=2, C=3, 7×W: H/W mix-ups, k = 1, and a kernel
        // equal to the padded input.
        let configs: [(Int, Int, Int, Int)] = [(3, 1, 0, 7), (3, 2, 1, 7), (5, 1, 1, 7), (5, 2, 0, 7),
                                               (3, 1, 1, 6), (5, 2, 2, 6), (1, 1, 0, 7), (11, 4, 2, 7)]
        for (i, (k, s, p, w)) in configs.enumerated() {
            var rng = SeededRNG(seed: UInt64(100 + i))
            let conv = Conv2d(inChannels: 3, outChannels: 4, kernel: k, stride: s, padding: p, rng: &rng)
            let x = randomTensor([2, 3, 7, w], seed: UInt64(200 + i))
            let r = checkLayersAgainstReference([conv], input: x, seed: UInt64(300 + i), label: "conv k\(k) s\(s) p\(p) w\(w)")
            assertCovers(r, ["0.weight", "0.bias"], "conv k\(k) s\(s) p\(p) w\(w)")
        }
    }

    /// The layer's cached Winograd filters (`Conv2d.withFilters`) give the same bits as the kernels
    /// transforming the current weights themselves, after every way the weights or the tile size
    /// can change: in-place edits, optimiser steps, assignment, and images that select F(4×4),
    /// F(2×2) or no Winograd at all.
    func testConv2dFilterCacheFollowsTheWeights() {
        for (k, p) in [(3, 1), (5, 2)] {
            var rng = SeededRNG(seed: UInt64(40 + k))
            let conv = Conv2d(inChannels: 16, outChannels: 16, kernel: k, padding: p, rng: &rng)
            var seed: UInt64 = 500
            /// Forward and input gradient of the layer against `Conv2D` with no filters given.
            func check(size: Int, _ label: String) {
                seed += 1
                let x = randomTensor([2, 16, size, size], seed: seed), dy = randomTensor([2, 16, size, size], seed: seed + 1000)
                let g = Conv2DGeometry(batch: 2, inChannels: 16, height: size, width: size, outChannels: 16,
                                       kernel: k, padding: p)
                var y = [Float](repeating: 0, count: g.outputCount), dx = [Float](repeating: 0, count: g.inputCount)
                Conv2D.forward(x: x.data, weight: conv.weight.value.data, bias: conv.bias.value.data, y: &y, geometry: g)
                Conv2D.backward(x: nil, weight: conv.weight.value.data, dy: dy.data, geometry: g, dx: &dx,
                                dWeight: nil, dBias: nil)
                for repeatCall in 0..<2 {
                    XCTAssertEqual(conv.forward(x, mode: .eval).data, y, "k\(k) \(label): forward, call \(repeatCall)")
                    XCTAssertEqual(conv.backward(dy, paramGrads: false).data, dx, "k\(k) \(label): ∂x, call \(repeatCall)")
                }
            }
            // 28×28: F(4×4) for 3×3 layers; 14×14: F(2×2); 6×6: im2col (too few tiles).
            check(size: 28, "first call")
            let before = conv.forward(randomTensor([1, 16, 14, 14], seed: 9), mode: .eval).data
            conv.weight.value.data[7] += 0.25
            XCTAssertNotEqual(conv.forward(randomTensor([1, 16, 14, 14], seed: 9), mode: .eval).data, before,
                              "k\(k): the edit must change the output")
            check(size: 14, "after an in-place edit")
            check(size: 28, "back to the first size")
            check(size: 6, "no Winograd")
            check(size: 14, "after no Winograd")
            for i in conv.weight.grad.data.indices { conv.weight.grad.data[i] = Float(i % 7) - 3 }
            let sgd = try! SGD(params: conv.params, learningRate: 0.01)
            sgd.step()
            check(size: 14, "after an SGD step")
            conv.weight.value = randomTensor(conv.weight.value.shape, seed: 77)
            check(size: 28, "after assignment")
        }
    }

    // MARK: Linear

    func testLinearGradients() {
        var rng = SeededRNG(seed: 11)
        let lin = Linear(inFeatures: 13, outFeatures: 5, rng: &rng)
        assertCovers(checkLayersAgainstReference([lin], input: randomTensor([3, 13], seed: 12), seed: 13, label: "linear"),
                     ["0.weight", "0.bias"], "linear")
        // More features than one block of `Linear.block` in both directions (several sgemm calls).
        let wide = Linear(inFeatures: 150, outFeatures: 137, rng: &rng)
        assertCovers(checkLayersAgainstReference([wide], input: randomTensor([2, 150], seed: 14), seed: 15, label: "linear wide"),
                     ["0.weight", "0.bias"], "linear wide")
    }

    // MARK: MaxPool2d / ReLU / Flatten / Dropout

    func testMaxPool2dGradients() {
        // Random inputs: near-ties are handled by the bounds (any candidate may win in float32) and
        // by skipping finite-difference probes whose stencil changes an argmax.
        for (k, s) in [(2, 2), (3, 2), (3, 1), (2, 3)] {
            let r = checkLayersAgainstReference([MaxPool2d(kernel: k, stride: s)], input: randomTensor([2, 3, 7, 7], seed: UInt64(k * 10 + s)),
                                                seed: UInt64(k * 10 + s + 5), label: "maxpool k\(k) s\(s)")
            assertCovers(r, [], "maxpool k\(k) s\(s)")
        }
        // A 5-level grid: many exact ties, broken like the reference (first maximum wins).
        var rng = SeededRNG(seed: 23)
        let grid = Tensor(shape: [2, 3, 7, 7], data: (0..<294).map { _ in Float(rng.below(5)) - 2 })
        checkLayersAgainstReference([MaxPool2d(kernel: 3, stride: 2)], input: grid, seed: 24, label: "maxpool ties", fdProbes: 0)
    }

    func testReLUGradients() {
        let x = randomTensor([2, 3, 7, 7], seed: 31)
        assertCovers(checkLayersAgainstReference([ReLU()], input: x, seed: 32, label: "relu"), [], "relu")
        let y = ReLU().forward(x, mode: .train)
        for i in 0..<x.count { XCTAssertEqual(y.data[i], max(x.data[i], 0)) }
    }

    func testFlattenGradientsAndShape() {
        let f = Flatten()
        let x = randomTensor([2, 3, 4, 5], seed: 41)
        let y = f.forward(x, mode: .train)
        XCTAssertEqual(y.shape, [2, 60])
        XCTAssertEqual(y.data, x.data)
        assertCovers(checkLayersAgainstReference([f], input: x, seed: 42, label: "flatten"), [], "flatten")
        XCTAssertEqual(f.outputShape([3, 4, 5]), [60])
    }

    func testDropoutGradientsWithFixedMask() {
        let drop = Dropout(p: 0.4, seed: 51)
        let r = checkLayersAgainstReference([drop], input: randomTensor([2, 3, 7, 7], seed: 52), mode: .train,
                                            seed: 53, label: "dropout")
        assertCovers(r, [], "dropout")
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
            let start: Float = 0.25
            for p in layer.params { p.grad = Tensor(repeating: start, shape: p.value.shape) }
            let dx1 = layer.backward(dy, paramGrads: true)
            let once = layer.params.map { $0.grad }
            let dx2 = layer.backward(dy, paramGrads: true)
            // The reference gradient g with its float32 bound E (a sum of n terms). A call that adds
            // g to a gradient G sums n + 1 terms: |result − (G + g)| ≤ E·γ_{n+1}/γ_n + γ_{n+1}·|G|.
            // Twice from 0.25: g2 − 0.25 − 2·(g1 − 0.25) = [g2 − (g1 + g)] − [g1 − (0.25 + g)].
            let ref = RefChain([RefChain.layer(layer, mode: .train)])
            _ = ref.forward(Bounded(exact: x), u: Rounding.float32)
            _ = ref.backward(Bounded(exact: dy), u: Rounding.float32)
            for ((p, g1), r) in zip(zip(layer.params, once), ref.grads) {
                let grow = gamma(r.terms + 1) / gamma(r.terms)
                for i in 0..<g1.count {
                    let first = r.e[i] * grow + gamma(r.terms + 1) * Double(start)
                    let second = r.e[i] * grow + gamma(r.terms + 1) * abs(Double(g1.data[i]))
                    let drift = Double(p.grad.data[i]) - Double(start) - 2 * (Double(g1.data[i]) - Double(start))
                    XCTAssertLessThanOrEqual(abs(drift), (first + second) * boundSlack, "\(p.name)[\(i)]")
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
        // layers (what the model does), and alexnet's layer kinds: 11×11/4 and 5×5 convolutions,
        // the overlapping 3×3/2 pool.
        var rng = SeededRNG(seed: 101)
        let small: [Layer] = [Conv2d(inChannels: 3, outChannels: 4, kernel: 3, padding: 1, rng: &rng), ReLU(),
                              MaxPool2d(kernel: 2, stride: 2), Flatten(), Dropout(p: 0.25, seed: 102),
                              Linear(inFeatures: 36, outFeatures: 5, rng: &rng)]
        checkLayersAgainstReference(small, input: randomTensor([2, 3, 6, 6], seed: 103), seed: 104, label: "chain")
        let alexLike: [Layer] = [Conv2d(inChannels: 3, outChannels: 4, kernel: 11, stride: 4, padding: 2, rng: &rng), ReLU(),
                                 MaxPool2d(kernel: 3, stride: 2),
                                 Conv2d(inChannels: 4, outChannels: 6, kernel: 5, padding: 2, rng: &rng), ReLU(),
                                 MaxPool2d(kernel: 3, stride: 2), Flatten(), Dropout(p: 0.5, seed: 105),
                                 Linear(inFeatures: 24, outFeatures: 7, rng: &rng), ReLU(),
                                 Linear(inFeatures: 7, outFeatures: 3, rng: &rng)]
        checkLayersAgainstReference(alexLike, input: randomTensor([2, 3, 55, 55], seed: 106), seed: 107, label: "alexnet-like chain")
        // vgg11's kind: a 16 → 16 3×3 layer on 20×20 images, which runs Winograd F(2×2, 3×3)
        // forward and backward to its input (its weight gradient stays on im2col).
        let vggLike: [Layer] = [Conv2d(inChannels: 3, outChannels: 16, kernel: 3, padding: 1, rng: &rng), ReLU(),
                                Conv2d(inChannels: 16, outChannels: 16, kernel: 3, padding: 1, rng: &rng), ReLU(),
                                MaxPool2d(kernel: 2, stride: 2), Flatten(),
                                Linear(inFeatures: 1600, outFeatures: 3, rng: &rng)]
        XCTAssertTrue(Winograd.applies(Conv2DGeometry(batch: 2, inChannels: 16, height: 20, width: 20, outChannels: 16,
                                                      kernel: 3, stride: 1, padding: 1)))
        checkLayersAgainstReference(vggLike, input: randomTensor([2, 3, 20, 20], seed: 108), seed: 109, label: "vgg-like chain")
        // A 16 → 16 layer straight into the linear head (fewer ReLU kinks for the probes to cross
        // than the pooled chain above has at these sizes), on images where it runs Winograd
        // F(4×4, 3×3) (3×3 on 41×42: 11 × 11 tiles, the last ones cut) and F(2×2, 5×5) (alexnet's
        // 5×5 kind on 21×20: 11 × 10 tiles). (kernel, padding, H, W, tile size, seed, label)
        for (k, pad, h, w, tile, seed, label) in [(3, 1, 41, 42, 4, UInt64(110), "vgg-like chain (F(4×4))"),
                                                  (5, 2, 21, 20, 2, UInt64(112), "alexnet-like chain (F(2×2, 5×5))")] {
            let chain: [Layer] = [Conv2d(inChannels: 3, outChannels: 16, kernel: 3, padding: 1, rng: &rng), ReLU(),
                                  Conv2d(inChannels: 16, outChannels: 16, kernel: k, padding: pad, rng: &rng), Flatten(),
                                  Linear(inFeatures: 16 * h * w, outFeatures: 3, rng: &rng)]
            XCTAssertEqual(Winograd.tileSize(Conv2DGeometry(batch: 2, inChannels: 16, height: h, width: w, outChannels: 16,
                                                            kernel: k, stride: 1, padding: pad)), tile, label)
            checkLayersAgainstReference(chain, input: randomTensor([2, 3, h, w], seed: seed), seed: seed + 1, label: label)
        }
    }

    /// The fused conv → ReLU (→ max-pool) block as one `Layer`, for the reference checks.
    private final class FusedBlock: Layer {
        let conv: Conv2d, pool: MaxPool2d?
        init(_ conv: Conv2d, _ pool: MaxPool2d?) { self.conv = conv; self.pool = pool }
        func forward(_ x: Tensor, mode: Mode) -> Tensor { conv.forwardBlock(x, pool: pool) }
        func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor { conv.backwardBlock(dy, paramGrads: paramGrads) }
        var params: [Param] { conv.params }
        func outputShape(_ input: [Int]) -> [Int] { pool?.outputShape(conv.outputShape(input)) ?? conv.outputShape(input) }
    }

    func testFusedConvBlockGradients() {
        // Conv → ReLU → pool (2×2/2, and alexnet's overlapping 3×3/2) and conv → ReLU alone.
        for (i, pool) in [MaxPool2d(kernel: 2, stride: 2), MaxPool2d(kernel: 3, stride: 2), nil].enumerated() {
            var rng = SeededRNG(seed: UInt64(400 + i))
            let conv = Conv2d(inChannels: 3, outChannels: 4, kernel: 3, padding: 1, rng: &rng)
            let block = FusedBlock(conv, pool)
            let reference: [RefLayer] = [RefSequence([RefConv(conv), RefReLU()] + (pool.map { [RefMaxPool(k: $0.kernel, s: $0.stride)] } ?? []))]
            let r = checkLayersAgainstReference([block], input: randomTensor([2, 3, 7, 7], seed: UInt64(410 + i)),
                                                seed: UInt64(420 + i), label: "fused block \(i)", reference: reference)
            assertCovers(r, ["0.weight", "0.bias"], "fused block \(i)")
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
