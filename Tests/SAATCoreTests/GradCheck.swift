// Shared finite-difference gradient checks for the SAATCore tests (layers, losses, models).
//
// API (all internal to the SAATCoreTests target):
//
//   @discardableResult
//   func gradCheck(_ label: String, at x: Tensor, analytic: Tensor,
//                  eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 1e-2,
//                  maxProbes: Int = 300, seed: UInt64 = 1,
//                  file: StaticString = #filePath, line: UInt = #line,
//                  _ f: (Tensor) -> Double) -> GradCheckReport
//       Compares `analytic` (∂f/∂x at x, same shape as x) with the central difference
//       (f(x + h·e_i) − f(x − h·e_i)) / (x_i⁺ − x_i⁻) at up to `maxProbes` indices i (all of them
//       when x.count ≤ maxProbes, otherwise a seeded random subset). The denominator uses the
//       float32 values actually stored, so the rounding of x_i ± eps does not bias the quotient.
//       Fails (XCTFail, at most 5 messages) where |num − ana| > atol + rtol·max(|num|, |ana|).
//       f is evaluated in float32 by the code under test and should return its scalar in Double.
//
//   func dotLoss(_ y: Tensor, _ w: Tensor) -> Double
//       Σ_i y_i·w_i accumulated in Double: the scalar L = ⟨y, w⟩ whose gradient w.r.t. y is w,
//       so ∂L/∂x of any layer is `layer.backward(w)`.
//
//   func randomTensor(_ shape: [Int], seed: UInt64, lo: Float = -1, hi: Float = 1) -> Tensor
//       U(lo, hi) values from SeededRNG(seed), row-major.
//
//   @discardableResult
//   func checkLayerGradients(_ layer: Layer, input x: Tensor, mode: Mode = .train,
//                            eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 1e-2,
//                            maxProbes: Int = 300, seed: UInt64 = 7,
//                            beforeForward: () -> Void = {},
//                            file: StaticString = #filePath, line: UInt = #line) -> [String: GradCheckReport]
//       L = dotLoss(layer.forward(x), dy) with a seeded random dy. Zeroes every Param.grad, runs
//       backward(dy, paramGrads: true), then checks ∂L/∂x ("input") and every parameter
//       ("weight", "bias", …) by perturbing x or Param.value in place (restored afterwards).
//       `beforeForward` runs before every forward (e.g. reset Dropout.rng to replay its mask).
//
// Why float32 with eps = 1e-2 is sound here: the layers are linear or piecewise linear in each
// input and parameter, so the central difference has no truncation error as long as x ± eps
// crosses no kink (tests keep ReLU inputs |x| ≥ 0.1 and max-pool values ≥ 0.05 apart). What is
// left is float32 rounding of the perturbed outputs: a few ulps (≈ 1e-7 for O(1) values) per
// affected output over Σ of at most a few hundred outputs, divided by 2·eps = 0.02: ≈ 1e-4, well
// under atol = 2e-3. For smooth non-linear functions (losses) pick eps ≈ 1e-3 and loosen rtol,
// since the truncation error is then O(eps²·f‴).
import XCTest
@testable import SAATCore

struct GradCheckReport {
    var probes = 0
    var maxAbsError = 0.0
    var maxRelError = 0.0
    var failures = 0
}

func dotLoss(_ y: Tensor, _ w: Tensor) -> Double {
    precondition(y.count == w.count, "dotLoss: \(y.shape) vs \(w.shape)")
    var s = 0.0
    for i in 0..<y.count { s += Double(y.data[i]) * Double(w.data[i]) }
    return s
}

func randomTensor(_ shape: [Int], seed: UInt64, lo: Float = -1, hi: Float = 1) -> Tensor {
    var rng = SeededRNG(seed: seed)
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { _ in rng.uniform(lo, hi) })
}

@discardableResult
func gradCheck(_ label: String, at x: Tensor, analytic: Tensor,
               eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 1e-2,
               maxProbes: Int = 300, seed: UInt64 = 1,
               file: StaticString = #filePath, line: UInt = #line,
               _ f: (Tensor) -> Double) -> GradCheckReport {
    XCTAssertEqual(x.shape, analytic.shape, "\(label): gradient shape", file: file, line: line)
    var report = GradCheckReport()
    guard x.shape == analytic.shape, x.count > 0 else { return report }
    var indices = Array(0..<x.count)
    if x.count > maxProbes {
        var rng = SeededRNG(seed: seed)
        indices = Array(rng.permutation(x.count).prefix(maxProbes)).sorted()
    }
    var probe = x
    for i in indices {
        let x0 = x.data[i]
        let xp = x0 + eps, xm = x0 - eps
        probe.data[i] = xp
        let fp = f(probe)
        probe.data[i] = xm
        let fm = f(probe)
        probe.data[i] = x0
        let num = (fp - fm) / (Double(xp) - Double(xm))
        let ana = Double(analytic.data[i])
        let err = abs(num - ana)
        let scale = max(abs(num), abs(ana))
        report.probes += 1
        report.maxAbsError = max(report.maxAbsError, err)
        if scale > 0 { report.maxRelError = max(report.maxRelError, err / scale) }
        if !(err <= atol + rtol * scale) {
            report.failures += 1
            if report.failures <= 5 {
                XCTFail("\(label)[\(i)]: analytic \(ana) vs numeric \(num) (|Δ| = \(err))", file: file, line: line)
            }
        }
    }
    if report.failures > 5 {
        XCTFail("\(label): \(report.failures) of \(report.probes) probes failed", file: file, line: line)
    }
    return report
}

@discardableResult
func checkLayerGradients(_ layer: Layer, input x: Tensor, mode: Mode = .train,
                         eps: Float = 1e-2, atol: Double = 2e-3, rtol: Double = 1e-2,
                         maxProbes: Int = 300, seed: UInt64 = 7,
                         beforeForward: () -> Void = {},
                         file: StaticString = #filePath, line: UInt = #line) -> [String: GradCheckReport] {
    beforeForward()
    let y = layer.forward(x, mode: mode)
    let dy = randomTensor(y.shape, seed: seed)
    for p in layer.params { p.grad.zero() }
    let dx = layer.backward(dy, paramGrads: true)
    var reports: [String: GradCheckReport] = [:]
    reports["input"] = gradCheck("input", at: x, analytic: dx, eps: eps, atol: atol, rtol: rtol,
                                 maxProbes: maxProbes, seed: seed, file: file, line: line) { xx in
        beforeForward()
        return dotLoss(layer.forward(xx, mode: mode), dy)
    }
    for p in layer.params {
        let saved = p.value
        let analytic = p.grad
        reports[p.name] = gradCheck(p.name, at: saved, analytic: analytic, eps: eps, atol: atol, rtol: rtol,
                                    maxProbes: maxProbes, seed: seed, file: file, line: line) { v in
            p.value = v
            beforeForward()
            return dotLoss(layer.forward(x, mode: mode), dy)
        }
        p.value = saved
    }
    return reports
}
