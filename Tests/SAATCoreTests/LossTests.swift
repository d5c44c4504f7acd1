import Foundation
import XCTest
import NumericBounds
@testable import SAATCore

/// Gradient checks and invariants of the six hashing losses (SAATCore/Losses).
final class LossTests: XCTestCase {
    // MARK: fixtures

    private struct Batch {
        let trainLabels: Tensor   // N×C multi-hot, every row ≥ 1 label
        let memory: Tensor        // N×K on the 2⁻⁴ grid in [−1, 1]
        let u: Tensor             // B×K on the 2⁻⁶ grid, |u| in [0.1, 0.9] (away from the kinks of sign/|·| at 0)
        let labels: Tensor        // B×C = rows `indices` of trainLabels
        let indices: [Int]
    }

    /// A batch whose float operands are dyadic (see `gradCheck`): u on the 2⁻⁶ grid, the memory on
    /// the 2⁻⁴ grid, labels 0/1.
    private func makeBatch(b: Int = 4, k: Int, n: Int = 10, c: Int = 5, seed: UInt64) -> Batch {
        var rng = SeededRNG(seed: seed)
        var y = Tensor(zeros: [n, c])
        for i in 0..<n {
            let count = 1 + rng.below(3)
            for _ in 0..<count { y.data[i * c + rng.below(c)] = 1 }
        }
        let mem = Tensor(shape: [n, k], data: (0..<(n * k)).map { _ in (rng.uniform(-1, 1) * 16).rounded() / 16 })
        let u = Tensor(shape: [b, k], data: (0..<(b * k)).map { _ in
            let m = (rng.uniform(0.1, 0.9) * 64).rounded() / 64
            return rng.below(2) == 0 ? m : -m
        })
        let idx = Array(rng.permutation(n).prefix(b))
        return Batch(trainLabels: y, memory: mem, u: u, labels: y.gather(idx), indices: idx)
    }

    private func make(_ name: String, _ bt: Batch, seed: UInt64 = 7, constants: LossConstants = .saat) throws -> HashingLoss {
        let l = try makeHashingLoss(name: name, bits: bt.u.shape[1], trainLabels: bt.trainLabels, seed: seed, constants: constants)
        l.memory = bt.memory
        return l
    }

    /// Central differences that float32 rounding cannot move, against the analytic gradient, in
    /// every entry of u (memory held fixed).
    ///
    /// Exact float32 by construction: u ± h (h = 2⁻⁹, 2⁻⁸) lies on the 2⁻⁹ grid and the memory on
    /// the 2⁻⁴ grid, so every product of two operands has ≤ 18 fractional bits and magnitude < 1, a
    /// sum of K ≤ 16 of them stays below 16 (≤ 22 significant bits), and the losses' scale factors
    /// (½, 1/K, HashNet's α = 10/K = 5/4 or 5/8 for K = 8, 16) add at most 3 bits: every float32
    /// product and sum the losses form from u (sgemm with any blocking, in any order) is exact. The
    /// rest is float64. So D(h) = (L(u + h·e_i) − L(u − h·e_i))/(2h) differs from ∂L/∂u_i by the
    /// truncation c·h² (+ float64 noise ≲ 1e-16·Σ|terms|/h), and |D(h) − D(2h)| ≈ 3c·h² bounds it
    /// with a factor 3 to spare. The analytic gradient is float32: `analyticBound(grad)` bounds its
    /// rounding, derived per loss from its formula (`gradientBound`).
    private func gradCheck(_ loss: HashingLoss, _ bt: Batch, file: StaticString = #filePath, line: UInt = #line) {
        let (_, g) = loss.value(u: bt.u, labels: bt.labels, indices: bt.indices)
        XCTAssertEqual(g.shape, bt.u.shape, file: file, line: line)
        XCTAssertGreaterThan(g.data.map { abs($0) }.max()!, 0, "\(loss.name): zero gradient", file: file, line: line)
        let analytic = gradientBound(loss, bt, grad: g)
        let h: Float = 0x1p-9
        var worst = 0.0
        for i in 0..<bt.u.count {
            var d: [Double] = []
            for step in [h, 2 * h] {
                var up = bt.u, um = bt.u
                up.data[i] += step
                um.data[i] -= step
                let lp = loss.value(u: up, labels: bt.labels, indices: bt.indices).loss
                let lm = loss.value(u: um, labels: bt.labels, indices: bt.indices).loss
                d.append((lp - lm) / (2 * Double(step)))
            }
            let tol = abs(d[0] - d[1]) + 1e-12 * max(1, abs(d[0])) / Double(h) + analytic[i]
            worst = max(worst, abs(d[0] - Double(g.data[i])) / tol)
            XCTAssertLessThanOrEqual(abs(d[0] - Double(g.data[i])), tol * boundSlack,
                                     "\(loss.name) K=\(bt.u.shape[1]) entry \(i): central difference \(d[0]) vs analytic \(g.data[i])",
                                     file: file, line: line)
        }
        XCTAssertTrue(loss.memory == bt.memory, "\(loss.name): value must not write the memory", file: file, line: line)
        print("bounds \(loss.name) K=\(bt.u.shape[1]) gradient: worst |error|/tolerance \(String(format: "%.2g", worst))")
    }

    /// A bound on the float32 rounding of each entry of `loss`'s analytic gradient, from its formula.
    /// The pairwise losses compute ∂L/∂u = s·G·U (+ a direct term) with G (B×N) rounded to float32
    /// from float64 and the product by one sgemm: each entry is a sum of N + 1 terms with at most
    /// m = N + 4 roundings each, so its error is ≤ γ_m·(s·Σ_j|G_ij|·max|U| + |direct|), and Σ_j|G_ij|
    /// is bounded from the loss's pair weights:
    /// - DPSH, DSDH: G = (σ(θ) − s)/(B·N), |σ − s| < 1, so Σ_j|G_ij| ≤ 1/B; DPSH's direct term
    ///   2η/D·(u − sign u) (its η and D from the loss: SAAT's or CgAT's);
    /// - DPH: G = 2(θ − (2s − 1))/(B·N) with |θ| = |u·U|/K ≤ 1, so Σ_j|G_ij| ≤ 4/B; s = 1/K;
    /// - HashNet: G = w·(σ − s) with the pair weights w summing to ≤ 2 over all pairs; s = α;
    /// - CSQ: each entry is one float64 value rounded once: u·|g|;
    /// - DCH: A·u − f∘u + quantisation term, its magnitudes computed here from DCH's formulas.
    private func gradientBound(_ loss: HashingLoss, _ bt: Batch, grad: Tensor) -> [Double] {
        let b = bt.u.shape[0], k = bt.u.shape[1], n = bt.memory.shape[0]
        let maxU = bt.memory.data.map { abs(Double($0)) }.max()!
        let m = gamma(n + 4)
        switch loss.name {
        case "dpsh":
            let l = loss as! DPSHLoss
            let eta = l.eta, inv = 1 / Double(l.quantisationDivisor(batch: b))
            return bt.u.data.map { v in
                let d = abs(Double(v) - (v > 0 ? 1 : -1))
                return m * (0.5 * maxU / Double(b) + 2 * eta * inv * d)
            }
        case "dsdh": return [Double](repeating: m * 0.5 * maxU / Double(b), count: b * k)
        case "dph": return [Double](repeating: m * maxU * 4 / Double(b) / Double(k), count: b * k)
        case "hashnet": return [Double](repeating: m * Double((loss as! HashNetLoss).alpha) * maxU * 2, count: b * k)
        case "csq": return grad.data.map { Rounding.float32 * abs(Double($0)) * 1.001 }
        case "dch": return dchMagnitudes(bt).map { gamma(b + 4) * $0 }
        default: preconditionFailure("no gradient bound for \(loss.name)")
        }
    }

    /// Per entry, Σ|terms| of DCH's analytic gradient (DCH.swift's formulas, in float64):
    /// Σ_j |(A_ij + A_ji)·u_jk| + |f_i·u_ik| + |∂L/∂cq_i · ∂cq_i/∂u_ik|.
    private func dchMagnitudes(_ bt: Batch) -> [Double] {
        let b = bt.u.shape[0], k = bt.u.shape[1]
        let halfK = Double(k) / 2, gam = 20.0, lambda = 0.1, maxCos = 0.99, minNorm = 1e-4
        let u = bt.u.data.map(Double.init)
        var s = [Double](repeating: 0, count: b * b)
        let c = bt.labels.shape[1]
        for i in 0..<b { for j in 0..<b {
            s[i * b + j] = (0..<c).contains { bt.labels.data[i * c + $0] * bt.labels.data[j * c + $0] > 0 } ? 1 : 0
        } }
        let norm = (0..<b).map { i in (0..<k).reduce(0.0) { $0 + u[i * k + $1] * u[i * k + $1] }.squareRoot() }
        let sPos = s.reduce(0, +), total = Double(b * b), sNeg = total - sPos
        let balanced = sPos != 0 && sNeg != 0
        let wPos = balanced ? total / sPos : 1, wNeg = balanced ? total / sNeg : 1
        var a = [Double](repeating: 0, count: b * b), coef = [Double](repeating: 0, count: b)
        for i in 0..<b { for j in 0..<b {
            let dot = (0..<k).reduce(0.0) { $0 + u[i * k + $1] * u[j * k + $1] }
            let prod = norm[i] * norm[j], den = max(prod, minNorm), cosine = dot / den
            let d = (1 - min(cosine, maxCos)) * halfK, w = s[i * b + j] > 0 ? wPos : wNeg
            let g = cosine <= maxCos ? -halfK * w * (s[i * b + j] / d - gam / (d * (d + gam))) / total : 0
            a[i * b + j] = g / den
            if prod >= minNorm { coef[i] += abs(g * cosine); coef[j] += abs(g * cosine) }
        } }
        var out = [Double](repeating: 0, count: b * k)
        for i in 0..<b { for kk in 0..<k {
            var mag = 0.0
            for j in 0..<b { mag += abs((a[i * b + j] + a[j * b + i]) * u[j * k + kk]) }
            mag += coef[i] / (norm[i] * norm[i]) * abs(u[i * k + kk])
            let l1 = (0..<k).reduce(0.0) { $0 + abs(u[i * k + $1]) }
            let den = max(norm[i] * Double(k).squareRoot(), minNorm), cq = l1 / den
            let dq = (1 - min(cq, maxCos)) * halfK
            if cq <= maxCos {
                let gq = lambda / Double(b) / (gam + dq) * halfK
                mag += gq * (1 / den + cq / (norm[i] * norm[i]) * abs(u[i * k + kk]))
            }
            out[i * k + kk] = mag
        } }
        return out
    }

    // MARK: gradient checks

    func testGradientsMatchFiniteDifferences() throws {
        for name in ["dpsh", "dph", "hashnet", "dsdh", "dch"] {
            for k in [8, 16] {
                let bt = makeBatch(k: k, seed: UInt64(k * 31 + name.count))
                let l = try make(name, bt)
                l.beginEpoch(0)   // DSDH: B, W from the DCC steps (does not change ∂L/∂u)
                gradCheck(l, bt)
            }
        }
        let bt = makeBatch(k: 8, seed: 99)
        gradCheck(try make("csq", bt), bt)
        let bt16 = makeBatch(k: 16, c: 5, seed: 98)
        gradCheck(try make("csq", bt16), bt16)
        // CgAT's constants: η and λ are applied in float64, so the argument above holds. (HashNet's
        // a = 0.1 is not dyadic, so its θ rounds: its value is checked against a bound instead,
        // in testCgATConstants.)
        for name in ["dpsh", "csq"] {
            let b8 = makeBatch(k: 8, seed: 97)
            gradCheck(try make(name, b8, constants: .cgat), b8)
        }
    }

    func testLossAndGradientWritesMemoryThenEqualsValue() throws {
        for name in Registry.losses.map(\.schema.name) {
            let bt = makeBatch(k: 8, seed: 5)
            let l = try make(name, bt)
            let (loss, grad) = l.lossAndGradient(u: bt.u, labels: bt.labels, indices: bt.indices)
            for (r, i) in bt.indices.enumerated() {
                XCTAssertEqual(Array(l.memory.data[(i * 8)..<(i * 8 + 8)]), Array(bt.u.data[(r * 8)..<(r * 8 + 8)]), name)
            }
            let again = l.value(u: bt.u, labels: bt.labels, indices: bt.indices)
            XCTAssertEqual(loss, again.loss, name)
            XCTAssertEqual(grad, again.grad, name)
            XCTAssertTrue(loss.isFinite && grad.allFinite, name)
        }
    }

    // MARK: values against naive references

    /// The sums of DPSH and DPH written as O(B·N·K) double loops from the formulas, over a batch
    /// of `b` outputs against `n` memory rows (K bits, C classes): Σ_ij [softplus(θ_ij) − s_ij θ_ij]
    /// with θ = ½·u·Uᵀ, Σ_ij (u_i·U_j/K − (2s_ij − 1))², and Σ_ik (u_ik − sign u_ik)².
    private func naiveDPSHAndDPHSums(_ bt: Batch, b: Int, n: Int, k: Int, c: Int)
        -> (likelihood: Double, dph: Double, quantisation: Double) {
        var like = 0.0, dph = 0.0, quant = 0.0
        for i in 0..<b {
            for j in 0..<n {
                var dot = 0.0, share = 0.0
                for x in 0..<k { dot += Double(bt.u.data[i * k + x]) * Double(bt.memory.data[j * k + x]) }
                for x in 0..<c { share += Double(bt.labels.data[i * c + x] * bt.trainLabels.data[j * c + x]) }
                let s = share > 0 ? 1.0 : 0.0
                let th = dot / 2
                like += log(1 + exp(th)) - s * th
                dph += (dot / Double(k) - (2 * s - 1)) * (dot / Double(k) - (2 * s - 1))
            }
            for x in 0..<k { let v = Double(bt.u.data[i * k + x]); quant += (v - (v > 0 ? 1 : -1)) * (v - (v > 0 ? 1 : -1)) }
        }
        return (like, dph, quant)
    }

    /// DPSH and DPH values against O(B·N·K) double loops written from the formulas.
    func testDPSHAndDPHValuesMatchNaiveLoops() throws {
        let bt = makeBatch(k: 16, seed: 11)
        let b = 4, n = 10, k = 16
        let (dpsh, dph, quant) = naiveDPSHAndDPHSums(bt, b: b, n: n, k: k, c: 5)
        let refDPSH = (dpsh + 50 * quant) / Double(b * n), refDPH = dph / Double(b * n)
        // Dyadic inputs make every float32 inner product exact (see gradCheck): what is left is the
        // float64 arithmetic of a sum of B·N non-negative terms, ~1e-16 relative.
        XCTAssertEqual(try make("dpsh", bt).value(u: bt.u, labels: bt.labels, indices: bt.indices).loss, refDPSH,
                       accuracy: 1e-12 * abs(refDPSH))
        XCTAssertEqual(try make("dph", bt).value(u: bt.u, labels: bt.labels, indices: bt.indices).loss, refDPH,
                       accuracy: 1e-12 * abs(refDPH))
    }

    func testSoftplusIsStableForLargeArguments() {
        XCTAssertEqual(LossMath.softplus(1000), 1000, accuracy: 1e-9)
        XCTAssertEqual(LossMath.softplus(-1000), 0, accuracy: 1e-9)
        XCTAssertEqual(LossMath.softplus(0), log(2.0), accuracy: 1e-12)
        XCTAssertEqual(LossMath.sigmoid(-1000), 0, accuracy: 1e-12)
        XCTAssertEqual(LossMath.sigmoid(1000), 1, accuracy: 1e-12)
    }

    // MARK: DSDH

    func testDSDHWSolveSatisfiesNormalEquations() {
        var rng = SeededRNG(seed: 3)
        let n = 30, k = 12, c = 5
        let codes = Tensor(shape: [n, k], data: (0..<(n * k)).map { _ in rng.below(2) == 0 ? -1 : 1 })
        let y = Tensor(shape: [n, c], data: (0..<(n * c)).map { _ in Float(rng.below(2)) })
        let w = DSDHLoss.solveW(codes: codes, labels: y, ridge: 1)
        XCTAssertEqual(w.shape, [k, c])
        // (BᵀB + I) W = BᵀY, in Double.
        for r in 0..<k {
            for col in 0..<c {
                var lhs = 0.0, rhs = 0.0
                for p in 0..<k {
                    var g = p == r ? 1.0 : 0.0
                    for i in 0..<n { g += Double(codes.data[i * k + r]) * Double(codes.data[i * k + p]) }
                    lhs += g * Double(w.data[p * c + col])
                }
                for i in 0..<n { rhs += Double(codes.data[i * k + r]) * Double(y.data[i * c + col]) }
                XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(rhs)), "row \(r) col \(col)")
            }
        }
    }

    func testCholeskySolveAndRejectsIndefinite() {
        let a: [Double] = [4, 2, 0, 2, 5, 1, 0, 1, 3]
        let x = DSDHLoss.choleskySolve(a, n: 3, rhs: [1, 2, 3], nrhs: 1)!
        for i in 0..<3 {
            let r = (0..<3).reduce(0.0) { $0 + a[i * 3 + $1] * x[$1] }
            XCTAssertEqual(r, [1.0, 2, 3][i], accuracy: 1e-12)
        }
        XCTAssertNil(DSDHLoss.choleskySolve([1, 2, 2, 1], n: 2, rhs: [1, 1], nrhs: 1))
    }

    func testDSDHEpochUpdatesCodesAndStateRoundTrips() throws {
        let bt = makeBatch(k: 8, seed: 21)
        let l = try make("dsdh", bt) as! DSDHLoss
        XCTAssertEqual(l.codes.data, bt.memory.data.map { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }, "preinstall: B = sign(U)")
        XCTAssertTrue(l.classifier.data.allSatisfy { $0 == 0 })
        l.beginEpoch(0)
        XCTAssertTrue(l.codes.data.allSatisfy { $0 == -1 || $0 == 0 || $0 == 1 })
        XCTAssertTrue(l.classifier.data.contains { $0 != 0 })
        let state = l.saveState()
        let before = l.value(u: bt.u, labels: bt.labels, indices: bt.indices).loss
        let fresh = try make("dsdh", bt)
        XCTAssertNotEqual(fresh.value(u: bt.u, labels: bt.labels, indices: bt.indices).loss, before)
        try fresh.loadState(state)
        XCTAssertEqual(fresh.value(u: bt.u, labels: bt.labels, indices: bt.indices).loss, before)
        XCTAssertThrowsError(try fresh.loadState(["B": state["B"]!])) { e in
            guard case SAATError.invalidArgument("state", _)? = e as? SAATError else { return XCTFail("\(e)") }
        }
        var bad = state
        bad["B"] = Tensor(repeating: 0.5, shape: state["B"]!.shape)
        XCTAssertThrowsError(try fresh.loadState(bad))
    }

    // MARK: HashNet

    func testHashNetContinuationScheduleAndState() throws {
        let bt = makeBatch(k: 8, seed: 4)
        let l = try make("hashnet", bt) as! HashNetLoss
        XCTAssertEqual(l.alpha, 10 / 8)
        for _ in 0..<199 { XCTAssertEqual(l.nextTrainingScale(), 1) }
        XCTAssertEqual(l.nextTrainingScale(), Float(2.0.squareRoot()), accuracy: 1e-6)   // t = 200
        for _ in 0..<199 { l.nextTrainingScale() }
        XCTAssertEqual(l.nextTrainingScale(), Float(3.0.squareRoot()), accuracy: 1e-6)   // t = 400
        let state = l.saveState()
        let other = try make("hashnet", bt) as! HashNetLoss
        try other.loadState(state)
        XCTAssertEqual(other.iteration, 400)
        XCTAssertEqual(other.scale, l.scale)
        XCTAssertEqual(other.nextTrainingScale(), l.nextTrainingScale())
    }

    // MARK: CSQ

    func testHadamardRowsAreSignsAndMutuallyOrthogonal() {
        for k in [1, 2, 8, 16, 64] {
            let h = CSQLoss.hadamard(k)
            XCTAssertTrue(h.data.allSatisfy { $0 == 1 || $0 == -1 })
            for i in 0..<k {
                for j in 0..<k {
                    var dot: Float = 0
                    for x in 0..<k { dot += h.data[i * k + x] * h.data[j * k + x] }
                    XCTAssertEqual(dot, i == j ? Float(k) : 0, "K=\(k) rows \(i),\(j)")
                }
            }
        }
    }

    func testCSQCentresAndExtraCentresWhenTwoKBelowC() throws {
        // C ≤ 2K: rows of [H; −H].
        let y = Tensor(shape: [3, 6], data: (0..<18).map { Float($0 % 7 == 0 ? 1 : 0) })
        let l = try makeHashingLoss(name: "csq", bits: 4, trainLabels: y, seed: 1) as! CSQLoss
        let h = CSQLoss.hadamard(4)
        for row in 0..<6 {
            for j in 0..<4 {
                XCTAssertEqual(l.centers.data[row * 4 + j], (row < 4 ? 1 : -1) * h.data[(row % 4) * 4 + j])
            }
        }
        // One-hot labels pick their class's centre.
        var oneHot = Tensor(zeros: [2, 6]); oneHot.data[0 * 6 + 2] = 1; oneHot.data[1 * 6 + 5] = 1
        let cen = l.batchCenters(labels: oneHot)
        XCTAssertEqual(Array(cen.data[0..<4]), Array(l.centers.data[8..<12]))
        XCTAssertEqual(Array(cen.data[4..<8]), Array(l.centers.data[20..<24]))
        // Classes 0 and 4 are opposite centres: their sum is 0 everywhere → the random centre r.
        var both = Tensor(zeros: [1, 6]); both.data[0] = 1; both.data[4] = 1
        XCTAssertEqual(l.batchCenters(labels: both).data, l.randomCenter.data)

        // C = 20 > 2K = 8: 12 balanced random centres, deterministic in the seed.
        let y20 = Tensor(zeros: [2, 20])
        let a = try makeHashingLoss(name: "csq", bits: 4, trainLabels: y20, seed: 9) as! CSQLoss
        let b = try makeHashingLoss(name: "csq", bits: 4, trainLabels: y20, seed: 9) as! CSQLoss
        XCTAssertEqual(a.centers, b.centers)
        for row in 8..<20 {
            let r = Array(a.centers.data[(row * 4)..<(row * 4 + 4)])
            XCTAssertTrue(r.allSatisfy { $0 == 1 || $0 == -1 })
            XCTAssertEqual(r.reduce(0, +), 0, "balanced extra centre \(row)")
        }
        let state = a.saveState()
        let c = try makeHashingLoss(name: "csq", bits: 4, trainLabels: y20, seed: 10) as! CSQLoss
        try c.loadState(state)
        XCTAssertEqual(c.centers, a.centers)
        XCTAssertEqual(c.randomCenter, a.randomCenter)
    }

    func testCSQRejectsOutputsOutsideUnitInterval() throws {
        let bt = makeBatch(k: 8, seed: 2)
        let l = try make("csq", bt)
        var u = bt.u; u.data[3] = 1.5
        XCTAssertThrowsError(try l.validateBatch(u: u, labels: bt.labels, indices: bt.indices)) { e in
            XCTAssertEqual((e as? SAATError).map { "\($0)" }?.hasPrefix("argument 'u'"), true)
        }
        // u = ±1 exactly on the wrong side: BCE's log clamp gives 100 per entry, finite gradient.
        var edge = bt.u
        let cen = (l as! CSQLoss).batchCenters(labels: bt.labels)
        edge.data[0] = -cen.data[0]
        let (loss, g) = l.value(u: edge, labels: bt.labels, indices: bt.indices)
        XCTAssertTrue(loss.isFinite && g.allFinite)
        XCTAssertGreaterThan(loss, 100 / 32)
    }

    // MARK: registry and validation

    func testRegistryRejectsBadArguments() throws {
        let y = Tensor(shape: [2, 3], data: [1, 0, 0, 0, 1, 1])
        XCTAssertEqual(Registry.losses.map(\.schema.name), ["dpsh", "dph", "hashnet", "dsdh", "dch", "csq"])
        for name in Registry.losses.map(\.schema.name) {
            let l = try makeHashingLoss(name: name, bits: 8, trainLabels: y, seed: 0)
            XCTAssertEqual(l.name, name)
            XCTAssertEqual(l.memory.shape, [2, 8])
        }
        func expectArg(_ arg: String, _ body: () throws -> Any) {
            XCTAssertThrowsError(try body()) { e in
                guard case let SAATError.invalidArgument(a, _)? = e as? SAATError else { return XCTFail("\(e)") }
                XCTAssertEqual(a, arg)
            }
        }
        expectArg("loss") { try makeHashingLoss(name: "x", bits: 8, trainLabels: y, seed: 0) }
        XCTAssertThrowsError(try makeHashingLoss(name: "x", bits: 8, trainLabels: y, seed: 0)) { e in
            XCTAssertEqual("\(e)", "argument 'loss': expected one of 'dpsh', 'dph', 'hashnet', 'dsdh', 'dch', 'csq', got 'x'")
        }
        expectArg("bits") { try makeHashingLoss(name: "dpsh", bits: 0, trainLabels: y, seed: 0) }
        expectArg("bits") { try makeHashingLoss(name: "csq", bits: 12, trainLabels: y, seed: 0) }
        expectArg("train_labels") { try makeHashingLoss(name: "dph", bits: 8, trainLabels: Tensor(shape: [2, 3], data: [1, 0, 0.5, 0, 1, 1]), seed: 0) }
        expectArg("train_labels") { try makeHashingLoss(name: "dph", bits: 8, trainLabels: Tensor(zeros: [6]), seed: 0) }

        let bt = makeBatch(k: 8, seed: 8)
        let l = try make("dpsh", bt)
        expectArg("indices") { try l.validateBatch(u: bt.u, labels: bt.labels, indices: [0, 1, 2, 10]) }
        expectArg("indices") { try l.validateBatch(u: bt.u, labels: bt.labels, indices: [0, 1, 2]) }
        expectArg("u") { try l.validateBatch(u: Tensor(zeros: [4, 7]), labels: bt.labels, indices: bt.indices) }
        var nan = bt.u; nan.data[0] = .nan
        expectArg("u") { try l.validateBatch(u: nan, labels: bt.labels, indices: bt.indices) }
        expectArg("labels") { try l.validateBatch(u: bt.u, labels: Tensor(zeros: [4, 4]), indices: bt.indices) }
        expectArg("labels") { try l.validateBatch(u: bt.u, labels: Tensor(repeating: 2, shape: [4, 5]), indices: bt.indices) }
        expectArg("memory") { try validateMemory(Tensor(zeros: [10, 7]), n: 10, bits: 8) }
        for name in Registry.losses.map(\.schema.name) { expectArg("state") { try make(name, bt).loadState(["bogus": Tensor(zeros: [1])]) } }
    }

    /// CgAT's constants (github.com/xunguangwang/CgAT @0d4a334, model/hashing_loss.py) where they
    /// differ from SAAT's: DPSH η = 0.001 on the mean over the B×K outputs (:67,88), HashNet
    /// a = 0.1 without continuation (:98,110-117), CSQ λ = 1e-4 (:314,332-333).
    func testCgATConstants() throws {
        let bt = makeBatch(k: 16, seed: 11)
        let b = 4, n = 10, k = 16, c = 5
        // DPSH: the naive sums of testDPSHAndDPHValuesMatchNaiveLoops with CgAT's quantisation term.
        let dpsh = try make("dpsh", bt, constants: .cgat) as! DPSHLoss
        XCTAssertEqual(dpsh.eta, 0.001)
        XCTAssertTrue(dpsh.quantisationOverBits)
        let (like, _, quant) = naiveDPSHAndDPHSums(bt, b: b, n: n, k: k, c: c)
        let ref = like / Double(b * n) + 0.001 * quant / Double(b * k)
        // Exact float32 inner products (dyadic inputs); float64 sums of non-negative terms.
        XCTAssertEqual(dpsh.value(u: bt.u, labels: bt.labels, indices: bt.indices).loss, ref, accuracy: 1e-12 * ref)
        XCTAssertNotEqual(try make("dpsh", bt).value(u: bt.u, labels: bt.labels, indices: bt.indices).loss, ref,
                          accuracy: 1e-3 * ref, "SAAT's constants give another value")

        // HashNet: L = Σ_{s=1} ℓ/S1 + Σ_{s=0} ℓ/S0 with θ = a·u·Uᵀ, a = 0.1 (as float32, the scale the
        // core multiplies by). The float32 θ rounds: |Δθ_ij| ≤ γ_{K+2}·a·Σ_k|u_ik U_jk| for any
        // summation order, and |∂ℓ/∂θ| = |σ(θ) − s| ≤ 1, so |ΔL| ≤ Σ_ij w_ij |Δθ_ij| (+ float64 sums).
        let hn = try make("hashnet", bt, constants: .cgat) as! HashNetLoss
        XCTAssertEqual(hn.alpha, 0.1)
        XCTAssertFalse(hn.continuation)
        for _ in 0..<400 { XCTAssertEqual(hn.nextTrainingScale(), 1) }
        let a = Double(Float(0.1))
        var terms: [(ell: Double, pos: Bool, err: Double)] = []
        for i in 0..<b {
            for j in 0..<n {
                var dot = 0.0, mag = 0.0, share = 0.0
                for x in 0..<k {
                    let p = Double(bt.u.data[i * k + x]) * Double(bt.memory.data[j * k + x])
                    dot += p; mag += abs(p)
                }
                for x in 0..<c { share += Double(bt.labels.data[i * c + x] * bt.trainLabels.data[j * c + x]) }
                let th = a * dot, s = share > 0 ? 1.0 : 0.0
                terms.append((log(1 + exp(th)) - s * th, s > 0, gamma(k + 2) * a * mag))
            }
        }
        let s1 = Double(terms.filter(\.pos).count), s0 = Double(terms.count) - s1
        XCTAssertTrue(s1 > 0 && s0 > 0, "precondition: both kinds of pairs")
        var hnRef = 0.0, hnBound = 0.0
        for t in terms {
            let w = t.pos ? 1 / s1 : 1 / s0
            hnRef += w * t.ell; hnBound += w * t.err
        }
        let got = hn.value(u: bt.u, labels: bt.labels, indices: bt.indices).loss
        XCTAssertLessThanOrEqual(abs(got - hnRef), (hnBound + 1e-12 * hnRef) * boundSlack, "HashNet, a = 0.1")

        // CSQ: the cross-entropy is the same, the quantisation term Q = Σ(|u| − 1)² (exact: u on
        // the 2⁻⁶ grid) has weight λ/(B·K): L_SAAT − L_CgAT = (0.05 − 1e-4)·Q/(B·K). Each loss is a
        // float64 sum of ≤ 2·B·K non-negative terms (relative error ≪ 1e-12).
        let csq = try make("csq", bt, constants: .cgat) as! CSQLoss
        XCTAssertEqual(csq.lambda, 1e-4)
        let q = bt.u.data.reduce(0.0) { $0 + (abs(Double($1)) - 1) * (abs(Double($1)) - 1) }
        let lSAAT = try make("csq", bt).value(u: bt.u, labels: bt.labels, indices: bt.indices).loss
        let lCgAT = csq.value(u: bt.u, labels: bt.labels, indices: bt.indices).loss
        XCTAssertEqual(lSAAT - lCgAT, (0.05 - 1e-4) * q / Double(b * k), accuracy: 1e-12 * (lSAAT + lCgAT))

        // Only these three losses have constants that differ between the codes.
        let declared = Registry.losses.filter { !$0.constants.isEmpty }.map(\.schema.name)
        XCTAssertEqual(declared, ["dpsh", "hashnet", "csq"])
    }

    func testHashNetWeightsBalancePositivesAndNegatives() throws {
        // With U = 0 every θ = 0, ℓ = log 2 − 0: L = log2·(Σ_pos 1/S1 + Σ_neg 1/S0) = 2·log 2.
        var bt = makeBatch(k: 8, seed: 12)
        bt = Batch(trainLabels: bt.trainLabels, memory: Tensor(zeros: [10, 8]), u: bt.u, labels: bt.labels, indices: bt.indices)
        let l = try make("hashnet", bt)
        XCTAssertEqual(l.value(u: bt.u, labels: bt.labels, indices: bt.indices).loss, 2 * log(2.0), accuracy: 1e-9)
    }
}
