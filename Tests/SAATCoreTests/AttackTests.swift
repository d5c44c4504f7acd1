import XCTest
import NumericBounds
@testable import SAATCore

final class AttackObjectiveTests: XCTestCase {
    /// ∂loss/∂F of an objective against central differences (F kept away from mask kinks).
    func checkObjective(_ obj: AttackObjective, f: Tensor, rows: Range<Int>, rtol: Double = 1e-2, atol: Double = 1e-4,
                        h: Float = 1e-3, file: StaticString = #filePath, line: UInt = #line) {
        let (_, g) = obj.evaluate(f: f, rows: rows, iteration: 0)
        let fd = centralDifference(f, h: h) { obj.evaluate(f: $0, rows: rows, iteration: 0).loss }
        for (i, v) in fd { assertClose(Double(g.data[i]), v, rtol: rtol, atol: atol, "∂L/∂F[\(i)]", file: file, line: line) }
    }

    /// Outputs in (−0.9, 0.9) avoiding |s| near 0.5 (SAAT mask kinks) for ±1 codes.
    func outputs(_ n: Int, _ k: Int, seed: UInt64) -> Tensor {
        var t = randomTensor([n, k], seed: seed, lo: -0.9, hi: 0.9)
        for i in 0..<t.count where abs(abs(t.data[i]) - 0.5) < 0.05 { t.data[i] += 0.1 }
        return t
    }

    func testMeanProductGradient() {
        let codes = randomCodes(6, 8, seed: 1)
        checkObjective(CodeProductObjective(codes: codes, .away), f: outputs(4, 8, seed: 2), rows: 2..<6)
        checkObjective(CodeProductObjective(codes: codes, .towards), f: outputs(4, 8, seed: 3), rows: 0..<4)
    }

    func testSAATMaskedLossGradientAndMask() {
        var codes = randomCodes(3, 10, seed: 4)
        codes.data[3] = 0   // a tied bit contributes nothing
        for targeted in [false, true] {
            let obj = MainstayMaskedObjective(codes: codes, targeted: targeted)
            checkObjective(obj, f: outputs(3, 10, seed: 5), rows: 0..<3)
        }
        // Non-targeted: a bit already flipped past −0.5 is masked out (zero gradient).
        let obj = MainstayMaskedObjective(codes: Tensor(shape: [1, 2], data: [1, 1]), targeted: false)
        let (l, g) = obj.evaluate(f: Tensor(shape: [1, 2], data: [-0.8, 0.3]), rows: 0..<1, iteration: 0)
        XCTAssertEqual(g.data[0], 0)
        XCTAssertEqual(l, Double((0.3 + 2) * 0.3), accuracy: 1e-6)
        XCTAssertEqual(g.data[1], 2 * 0.3 + 2, accuracy: 1e-6)
    }

    func testHAGGradient() {
        let clean = randomTensor([5, 12], seed: 6, lo: -0.9, hi: 0.9)
        // keep |ĥ − sign h| away from the 1.5 mask edge
        var f = outputs(3, 12, seed: 7)
        for i in 0..<f.count {
            let s: Float = clean.data[2 * 12 + i] >= 0 ? 1 : -1
            if abs(abs(f.data[i] - s) - 1.5) < 0.05 { f.data[i] *= 0.8 }
        }
        checkObjective(HAGObjective(clean: clean), f: f, rows: 2..<5, atol: 1e-5)
    }

    /// HAG's β term averages the masked outputs m ⊙ ĥ over the K bits (SAAT hag.py:35,40), not ĥ.
    /// K = 4, clean row h = (½, −½, ½, ½) (signs +, −, +, +), ĥ = (¼, ¾, −⅝, ½):
    ///   bit 0: |¼ − 1| = ¾ < 1.5 → m = 1;  bit 1: |¾ + 1| = 1.75 → m = 0;
    ///   bit 2: |−⅝ − 1| = 1.625 → m = 0;    bit 3: |½ − 1| = ½ → m = 1.
    /// a = (¼·½ + ½·½)/2 = 3/16, (a + 1)² = 361/256; c = (¼ + ½)/4 = 3/16, c² = 9/256
    /// (the unmasked mean of ĥ would be 7/32). L = 361/256 + β·9/256.
    /// ∂L/∂ĥ = 2(a+1)·h/2 + 2β·c/4 = 19/32 + β·3/32 on bits 0 and 3, 0 on the masked bits 1 and 2.
    /// Every operand and intermediate is a dyadic rational with a few significant bits, so the
    /// float32 evaluation is exact: the values are compared for equality.
    func testHAGBetaTermAveragesMaskedOutputs() {
        let clean = Tensor(shape: [2, 4], data: [0.9, 0.9, 0.9, 0.9, 0.5, -0.5, 0.5, 0.5])
        let f = Tensor(shape: [1, 4], data: [0.25, 0.75, -0.625, 0.5])
        for beta: Float in [1, 2] {
            let obj = HAGObjective(clean: clean, t: 0.5, beta: beta, nominalBatch: 1)
            let (l, g) = obj.evaluate(f: f, rows: 1..<2, iteration: 0)
            XCTAssertEqual(l, 361.0 / 256 + Double(beta) * 9 / 256, "β = \(beta)")
            let live = Float(19) / 32 + beta * 3 / 32
            XCTAssertEqual(g.data, [live, 0, 0, live], "β = \(beta)")
        }
        // The per-image mean over `nominalBatch` images scales the loss and the gradient.
        let (l4, g4) = HAGObjective(clean: clean, nominalBatch: 4).evaluate(f: f, rows: 1..<2, iteration: 0)
        XCTAssertEqual(l4, 370.0 / 256 / 4)
        XCTAssertEqual(g4.data, [22.0 / 32 / 4, 0, 0, 22.0 / 32 / 4])
    }

    func testSDHAGradient() {
        let train = randomCodes(20, 8, seed: 8)
        let rel: [[Int]] = [[0, 3, 5], [], [1, 2, 7, 19]]
        let clean = randomTensor([3, 8], seed: 9)
        for targeted in [false, true] {
            let obj = SDHAObjective(trainCodes: train, relevant: rel, clean: clean, targeted: targeted)
            // d_H is piecewise constant: keep F away from 0 so sign(q) is stable under ±h
            var f = outputs(3, 8, seed: 10)
            for i in 0..<f.count where abs(f.data[i]) < 0.05 { f.data[i] = 0.2 }
            // The loss sums float32 terms: h = 3e-3 keeps rounding noise below the tolerance
            // (the objective is smooth where sign(q) is fixed, so truncation error is ~h²).
            checkObjective(obj, f: f, rows: 0..<3, rtol: 2e-2, atol: 1e-5, h: 3e-3)
        }
    }

    /// The circle loss computes its similarities with sgemm, so its float32 rounding would depend on
    /// the BLAS kernel. Dyadic operands make them exact (as in LossTests.gradCheck): p on the 2⁻⁶
    /// grid, p ± h on the 2⁻⁹ grid, codes ±1 and K = 8, so p·Bᵀ/K is a sum of 8 values with ≤ 9
    /// fractional bits, divided by 8: exact in any order; the rest is float64. The central difference
    /// then differs from the derivative only by truncation, bounded by |D(h) − D(2h)|. The analytic
    /// gradient (1/K)·G·B + quantisation term has N + 2 roundings per term, with Σ_j|G_ij| ≤ 6/b
    /// (two softmax weights summing to 1 each, times a ≤ 3, over b), plus 2u of the quantisation term.
    func testCircleLossGradient() {
        var p = randomTensor([4, 8], seed: 11, lo: -0.8, hi: 0.8)
        for i in 0..<p.count { p.data[i] = (p.data[i] * 64).rounded() / 64 }
        let y = randomLabels(4, 5, seed: 12), tc = randomCodes(15, 8, seed: 13), tl = randomLabels(15, 5, seed: 14)
        let (_, g) = CircleLoss.value(p: p, y: y, trainCodes: tc, trainLabels: tl)
        let b = 4, n = 15, k = 8
        let h: Float = 0x1p-9
        for i in 0..<p.count {
            var d: [Double] = []
            for step in [h, 2 * h] {
                var pp = p, pm = p
                pp.data[i] += step; pm.data[i] -= step
                let lp = CircleLoss.value(p: pp, y: y, trainCodes: tc, trainLabels: tl, weightsAt: p).0
                let lm = CircleLoss.value(p: pm, y: y, trainCodes: tc, trainLabels: tl, weightsAt: p).0
                d.append((lp - lm) / (2 * Double(step)))
            }
            let v = p.data[i], sg: Float = v > 0 ? 1 : (v < 0 ? -1 : 0)
            let quant = abs(2 * Double(sg - v) / (1e4 * Double(b)))
            let analytic = gamma(n + 2) * 6 / Double(k * b) + 2 * Rounding.float32 * quant
            let tol = abs(d[0] - d[1]) + 1e-12 / Double(h) + analytic
            XCTAssertLessThanOrEqual(abs(Double(g.data[i]) - d[0]), tol * boundSlack, "∂L/∂p[\(i)]: \(g.data[i]) vs \(d[0])")
        }
    }

    func testAlphaSchedule() {
        XCTAssertEqual((0..<100).map { AlphaSchedule.alpha(iteration: $0, of: 100) }.filter { $0 == 0.1 }.count, 50)
        XCTAssertEqual(AlphaSchedule.alpha(iteration: 55, of: 100), 0.2)
        XCTAssertEqual(AlphaSchedule.alpha(iteration: 99, of: 100), 1.0)
        XCTAssertEqual(AlphaSchedule.alpha(iteration: 6, of: 7), 0.7)   // ⌊10·6/7⌋ = 8
        XCTAssertEqual(AlphaSchedule.alpha(iteration: 0, of: 1), 0.1)
    }
}

/// cnn-small, 16 bits, seed 1, with its hash-layer weights ×10 so attacks move codes within a
/// few steps (the model of the attack-engine and batch-invariance tests).
func strongHashModel() throws -> HashingModel {
    let m = try HashingModel(backbone: .cnnSmall, bits: 16, seed: 1)
    for p in m.namedParams where p.name == "hash_layer.weight" {
        for i in 0..<p.param.value.count { p.param.value.data[i] *= 10 }
    }
    return m
}

final class AttackEngineTests: XCTestCase {
    func model() throws -> HashingModel { try strongHashModel() }

    func testEveryUpdateRespectsTheBallAndRangeAndIsSeeded() throws {
        let m = try model()
        let n = 3
        let x = randomTensor([n, 3, 32, 32], seed: 3, lo: 0, hi: 1)
        let codes = randomCodes(n, 16, seed: 4)
        for update in [ImageUpdate.sign(step: 2 / 255), .sgd(lr: 100, momentum: 0.9), .adam(lr: 0.01, beta1: 0.9, beta2: 0.999)] {
            let cfg = AttackConfig(eps: 8 / 255, steps: 4, update: update, randomStart: true, alphaSchedule: true, mseWeight: 1, seed: 9)
            var a = [Float](repeating: 0, count: x.count), b = a
            try x.data.withUnsafeBufferPointer { xp in
                try AttackEngine.run(model: m, images: xp.baseAddress!, n: n, objective: CodeProductObjective(codes: codes, .away), config: cfg, out: &a)
                try AttackEngine.run(model: m, images: xp.baseAddress!, n: n, objective: CodeProductObjective(codes: codes, .away), config: cfg, out: &b)
            }
            XCTAssertEqual(a, b, "same seed, same result (\(update))")
            var maxDiff: Float = 0
            for i in 0..<x.count {
                XCTAssertGreaterThanOrEqual(a[i], 0); XCTAssertLessThanOrEqual(a[i], 1)
                maxDiff = max(maxDiff, abs(a[i] - x.data[i]))
            }
            XCTAssertLessThanOrEqual(maxDiff, 8 / 255 + 1e-6)
            XCTAssertGreaterThan(maxDiff, 1 / 255)
        }
    }

    func testPGDMovesCodesAwayFromCleanCodes() throws {
        let m = try model()
        let n = 8
        let x = randomTensor([n, 3, 32, 32], seed: 5, lo: 0, hi: 1)
        let pgd = try PGDAttack.spec.prepare(16, AttackInputs([:]), try PGDAttack.schema.resolve(["steps": .int(10)]), { false })
        var adv = [Float](repeating: 0, count: x.count)
        let clean = try x.data.withUnsafeBufferPointer { try PGDAttack.cleanCodes(model: m, images: $0.baseAddress!, n: n) }
        try x.data.withUnsafeBufferPointer { try pgd.run(model: m, images: $0.baseAddress!, n: n, labels: nil, out: &adv) }
        let f = m.forward(Tensor(shape: x.shape, data: adv))
        var flipped = 0
        for i in 0..<f.count where (f.data[i] >= 0 ? 1 : -1) != clean.data[i] { flipped += 1 }
        XCTAssertGreaterThan(flipped, f.count / 4, "PGD should flip a good share of bits")
    }

    /// Every attack's parameters are checked by its schema, once, naming the parameter.
    func testSchemasRejectBadParameters() throws {
        func expect(_ name: String, _ given: [String: Value], file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try PGDAttack.schema.resolve(given), file: file, line: line) { e in
                guard case SAATError.invalidArgument(let arg, _)? = e as? SAATError else { return XCTFail("\(e)", file: file, line: line) }
                XCTAssertEqual(arg, name, file: file, line: line)
            }
        }
        expect("eps", ["eps": .float(-1)])
        expect("steps", ["steps": .int(0)])
        expect("step", ["step": .float(0)])
        expect("eps", ["eps": .float(.nan)])
        expect("eps", ["eps": .string("x")])
        XCTAssertThrowsError(try PGDAttack.schema.resolve(["lr": .float(1)])) { e in   // PGD has no lr
            XCTAssertEqual(e as? SAATError, .unexpectedArgument("lr", owner: "PGD", known: ["eps", "step", "steps", "random_start", "seed"]))
        }
        XCTAssertEqual(try PGDAttack.schema.resolve([:]).int("steps"), 10)
        XCTAssertEqual(try PGDAttack.schema.resolve(["eps": .int(0)]).double("eps"), 0)   // an int for a float
        for spec in Registry.attacks { XCTAssertNoThrow(try spec.schema.resolve([:]), spec.schema.name) }
    }

    func testDHTAAnchorIsComponentVote() throws {
        let db = Tensor(shape: [3, 2], data: [1, 1, 1, -1, -1, -1])
        let dl = Tensor(shape: [3, 2], data: [1, 0, 1, 0, 0, 1])
        let a = try DHTAAttack.anchors(targets: Tensor(shape: [1, 2], data: [0, 1]), dbCodes: db, dbLabels: dl, nt: 9, seed: 1)
        XCTAssertEqual(a.data, [-1, -1])
        XCTAssertThrowsError(try DHTAAttack.anchors(targets: Tensor(shape: [1, 2], data: [1, 1]), dbCodes: db, dbLabels: dl, nt: 9, seed: 1))
        // Per-row streams: a row's anchor depends on its index in the whole set, not on its batch.
        let t = Tensor(shape: [2, 2], data: [1, 0, 1, 0])
        let both = try DHTAAttack.anchors(targets: t, dbCodes: db, dbLabels: dl, nt: 1, seed: 7)
        let second = try DHTAAttack.anchors(targets: t.slice(1, 1), dbCodes: db, dbLabels: dl, nt: 1, seed: 7, firstIndex: 1)
        XCTAssertEqual(Array(both.data[2...]), second.data)
    }
}
