import XCTest
@testable import SAATCore

/// ProS-GAN's networks and losses (Sources/SAATCore/Models/ProSGAN, Attacks/ProSGAN.swift).
///
/// Every backward pass of the networks is a chain of layers with float64 references
/// (`checkLayersAgainstReference`: production vs reference within float32 rounding bounds, the
/// reference vs central differences). The losses are checked by central differences on dyadic
/// inputs, where every float32 product and sum of the loss is exact, so the only error of a
/// difference quotient is its truncation (zero for the quadratic terms) and float64 rounding.
final class ProSGANTests: XCTestCase {
    private func tinyGenerator() throws -> ProSGANGenerator {
        try ProSGANGenerator(side: 16, seed: 3, widths: .init(image: 4, label: 32))
    }

    func testGeneratorChainsMatchReferences() throws {
        let g = try tinyGenerator()
        // label encoder after its Linear + ReLU: (B, 32, 1, 1) → (B, 3, 16, 16)
        checkLayersAgainstReference(g.labelTransform, input: randomTensor([2, 32, 1, 1], seed: 11), seed: 12,
                                    label: "label encoder", fdProbes: 6)
        checkLayersAgainstReference(g.encoder, input: randomTensor([2, 6, 16, 16], seed: 13), seed: 14,
                                    label: "image encoder", fdProbes: 6)
        checkLayersAgainstReference(g.decoder, input: randomTensor([2, 16, 4, 4], seed: 15), seed: 16,
                                    label: "decoder", fdProbes: 6)
        checkLayersAgainstReference([g.outConv], input: randomTensor([2, 7, 16, 16], seed: 17), seed: 18,
                                    label: "output convolution", fdProbes: 6)
    }

    func testDiscriminatorChainMatchesReference() throws {
        let d = try ProSGANDiscriminator(side: 16, classes: 3, seed: 4)
        XCTAssertEqual(d.repeats, 2)
        checkLayersAgainstReference(d.main + [d.fc], input: randomTensor([2, 3, 16, 16], seed: 21), seed: 22,
                                    label: "discriminator", fdProbes: 6)
    }

    /// The generator's glue (2x − 1, concatenations, tanh) around the checked chains: its
    /// forward equals the chains composed by hand, bit for bit.
    func testGeneratorForwardIsTheComposition() throws {
        let g = try tinyGenerator()
        let x = randomTensor([2, 3, 16, 16], seed: 31, lo: 0, hi: 1), f = randomTensor([2, 512], seed: 32)
        let y = g.forward(images: x, feature: f)
        var xt = x
        for i in 0..<xt.count { xt.data[i] = 2 * xt.data[i] - 1 }
        let lf = g.labelReLU.forward(g.labelFC.forward(f, mode: .train), mode: .train).reshaped([2, 32, 1, 1])
        let map = g.labelTransform.reduce(lf) { $1.forward($0, mode: .train) }
        let enc = g.encoder.reduce(ChannelConcat().forward(map, xt)) { $1.forward($0, mode: .train) }
        let dec = g.decoder.reduce(enc) { $1.forward($0, mode: .train) }
        var out = g.outConv.forward(ChannelConcat().forward(dec, xt), mode: .train)
        for i in 0..<out.count { out.data[i] = tanhf(out.data[i]) }
        XCTAssertEqual(y.data, out.data)
    }

    /// The official `state_dict` names and shapes at 224×224 (FLICKR-25K: 38 classes, 32 bits).
    func testOfficialNamesAndShapes() throws {
        let g = try ProSGANGenerator(side: 224, seed: 0)
        let d = try ProSGANDiscriminator(side: 224, classes: 38, seed: 0)
        let p = try ProSGANPrototypeNet(classes: 38, bits: 32, seed: 0)
        let gs = Dictionary(uniqueKeysWithValues: g.stateDict())
        XCTAssertEqual(gs.count, 2 + 5 + 6 + 12 + 2 + 1)
        XCTAssertEqual(gs["label_encoder.fc.0.weight"]?.shape, [128 * 14 * 14, 512])
        XCTAssertEqual(gs["label_encoder.transform.0.weight"]?.shape, [128, 64, 4, 4])
        XCTAssertEqual(gs["label_encoder.transform.12.weight"]?.shape, [3, 8, 3, 3])
        XCTAssertEqual(gs["image_encoder.0.weight"]?.shape, [64, 6, 7, 7])
        XCTAssertEqual(gs["image_encoder.6.bias"]?.shape, [256])
        XCTAssertEqual(gs["image_encoder.11.main.3.weight"]?.shape, [256, 256, 3, 3])
        XCTAssertEqual(gs["decoder.6.weight"]?.shape, [128, 64, 4, 4])
        XCTAssertEqual(gs["residual.0.weight"]?.shape, [3, 67, 3, 3])
        let ds = Dictionary(uniqueKeysWithValues: d.stateDict())
        XCTAssertEqual(d.repeats, 5)
        XCTAssertEqual(ds["main.8.weight_bar"]?.shape, [1024, 512, 4, 4])
        XCTAssertEqual(ds["main.8.weight_u"]?.shape, [1024])
        XCTAssertEqual(ds["main.0.bias"]?.shape, [64])
        XCTAssertEqual(ds["fc.weight"]?.shape, [39, 1024, 7, 7])
        XCTAssertEqual(p.stateDict().map(\.0), ["feature.0.weight", "feature.0.bias", "feature.2.weight", "feature.2.bias",
                                                "hashing.0.weight", "hashing.0.bias", "classifier.0.weight", "classifier.0.bias"])
        XCTAssertEqual(ProSGANDiscriminator.repeats(side: 32), 3)
        XCTAssertThrowsError(try ProSGANGenerator(side: 40, seed: 0))
    }

    /// Loads restore every tensor; a wrong shape is an error naming the entry and changes nothing.
    func testStateRoundTrip() throws {
        let a = try ProSGANDiscriminator(side: 16, classes: 3, seed: 1), b = try ProSGANDiscriminator(side: 16, classes: 3, seed: 2)
        _ = a.forward(randomTensor([1, 3, 16, 16], seed: 5))   // moves u, v
        try b.loadStateDict(Dictionary(uniqueKeysWithValues: a.stateDict()))
        XCTAssertEqual(a.stateDict().map(\.1.data), b.stateDict().map(\.1.data))
        var bad = Dictionary(uniqueKeysWithValues: a.stateDict())
        bad["fc.weight"] = Tensor(zeros: [1])
        let before = b.stateDict().map(\.1.data)
        XCTAssertThrowsError(try b.loadStateDict(bad)) { e in XCTAssertTrue("\(e)".contains("fc.weight")) }
        XCTAssertEqual(before, b.stateDict().map(\.1.data))
    }

    private func dyadic(_ shape: [Int], seed: UInt64, den: Float = 8, avoidZero: Bool = false) -> Tensor {
        var rng = SeededRNG(seed: seed)
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).map { _ in
            var v = Float(Int(rng.below(15)) - 7) / den
            if avoidZero && v == 0 { v = 1 / den }
            return v
        })
    }

    /// Central differences of a loss of dyadic inputs with a dyadic step: the perturbed inputs are
    /// exact, the loss is computed in float64 from exactly computed float32 products.
    private func assertGradient(_ x: Tensor, _ grad: Tensor, step: Float, tol: Double, label: String,
                                _ f: (Tensor) -> Double) {
        for i in 0..<x.count {
            var p = x, m = x
            p.data[i] += step; m.data[i] -= step
            let fd = (f(p) - f(m)) / (2 * Double(step))
            XCTAssertEqual(Double(grad.data[i]), fd, accuracy: tol + 1e-6 * abs(fd), "\(label) [\(i)]")
        }
    }

    func testPrototypeLossGradients() {
        let b = 3, k = 4, n = 5, c = 3
        let h = dyadic([b, k], seed: 41, avoidZero: true)          // |h| ≥ 1/8: no sign change within the step
        let cc = dyadic([b, c], seed: 42)
        let y = randomLabels(b, c, seed: 43), codes = randomCodes(n, k, seed: 44), labels = randomLabels(n, c, seed: 45)
        let (_, dh, dc) = ProSGANPrototypeNet.loss(h: h, c: cc, y: y, trainCodes: codes, trainLabels: labels)
        // Truncation of the softplus term: h²/6·max|f'''| with |softplus'''| ≤ 0.1 and θ's
        // derivative ½·|b| = ½ per code entry, summed over N entries and scaled by 1/(N·B).
        let step: Float = 1 / 64
        let trunc = Double(step * step) / 6 * 0.1 * 0.125
        assertGradient(h, dh, step: step, tol: trunc + 1e-12, label: "∂h") {
            ProSGANPrototypeNet.loss(h: $0, c: cc, y: y, trainCodes: codes, trainLabels: labels).loss
        }
        assertGradient(cc, dc, step: step, tol: 1e-12, label: "∂c") {
            ProSGANPrototypeNet.loss(h: h, c: $0, y: y, trainCodes: codes, trainLabels: labels).loss
        }
    }

    func testLSGANGradients() {
        let d = dyadic([3, 4], seed: 51), y = randomLabels(3, 3, seed: 52)
        for flag: Float in [0, 1] {
            let (_, g) = ProSGAN.lsgan(d, labels: y, flag: flag, weight: 0.5)
            assertGradient(d, g, step: 1 / 64, tol: 1e-12, label: "lsgan flag \(flag)") {
                0.5 * ProSGAN.lsgan($0, labels: y, flag: flag).0
            }
        }
    }

    /// The official 'linear' policy with 50 + 50 epochs: 1 for epochs 0…49, then 1 − (e − 49)/51.
    func testLinearDecaySchedule() {
        let s = LinearDecaySchedule(base: 1, constantEpochs: 50, decayEpochs: 50, batchesPerEpoch: 7)
        XCTAssertEqual(s.rate(at: 0), 1)
        XCTAssertEqual(s.rate(at: 49 * 7 + 6), 1)
        XCTAssertEqual(s.rate(at: 50 * 7), Float(1 - 1.0 / 51))
        XCTAssertEqual(s.rate(at: 99 * 7), Float(1 - 50.0 / 51))
    }
}
