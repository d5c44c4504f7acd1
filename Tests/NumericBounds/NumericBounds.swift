// Rounding-error bounds that the test suites derive their tolerances from.
//
// Why: float32 results of the kernels differ in their last bits between CPUs (OpenBLAS picks its
// micro-kernels per CPU, so the summation order inside a dot product changes), between SIMD
// widths and between thread counts of routines that promise no more. A test that compares a
// float32 result with a float64 reference therefore needs a tolerance that holds for *every*
// summation order: the a-priori bounds of Higham, "Accuracy and Stability of Numerical
// Algorithms" (2nd ed., 2002), §3.1, in the standard model fl(a ∘ b) = (a ∘ b)(1 + δ), |δ| ≤ u:
//
//   |fl(Σ_{i≤n} a_i·b_i) − Σ a_i·b_i| ≤ γ_n · Σ |a_i·b_i|,   γ_n = n·u / (1 − n·u),
//
// for any order of the additions (any blocking, any tree, with or without fused multiply-adds).
// Tests compute the magnitude Σ|a_i·b_i| next to their float64 reference and assert
// |actual − reference| ≤ γ_n · magnitude (times `slack`, see `assertWithinBounds`).
import XCTest

public enum Rounding {
    /// Unit roundoff of IEEE binary32 with round-to-nearest: 2⁻²⁴.
    public static let float32 = 0x1p-24
    /// Unit roundoff of IEEE binary64 with round-to-nearest: 2⁻⁵³.
    public static let float64 = 0x1p-53
}

/// γ_n = n·u/(1 − n·u) (Higham, Lemma 3.1): the relative error bound of n chained roundings.
public func gamma(_ n: Int, u: Double = Rounding.float32) -> Double {
    let nu = Double(max(n, 0)) * u
    precondition(nu < 0.5, "gamma: n·u = \(nu) is too large for a first-order bound")
    return nu / (1 - nu)
}

/// The factor every bound is multiplied by before it is compared: 1 + 1e-3. It covers what the
/// first-order bounds drop, all far below 1e-3 of the bound: products of two error terms
/// (γ_n² ≲ 1e-6 relative) and the float64 reference's own rounding (≤ γ_n at u = 2⁻⁵³, i.e.
/// 2⁻²⁹ of the float32 bound).
public let boundSlack = 1.001

/// Worst case of a bounded comparison: the largest |actual − reference| / bound and where.
public struct BoundReport: CustomStringConvertible {
    public var count = 0
    public var worstRatio = 0.0
    public var worstIndex = -1
    public var failures = 0
    public var description: String {
        "\(count) values, worst |error|/bound \(String(format: "%.3g", worstRatio)) at \(worstIndex), \(failures) over"
    }
}

/// Asserts |actual_i − reference_i| ≤ bound_i · `boundSlack` for every i (NaN fails). At most
/// five failures are reported one by one, then a count. Returns the worst ratio, so a caller can
/// also check that a bound is not vacuous.
@discardableResult
public func assertWithinBounds(_ actual: [Float], _ reference: [Double], _ bound: [Double], _ label: String,
                               file: StaticString = #filePath, line: UInt = #line) -> BoundReport {
    var r = BoundReport()
    XCTAssertEqual(actual.count, reference.count, "\(label): count", file: file, line: line)
    XCTAssertEqual(bound.count, reference.count, "\(label): bound count", file: file, line: line)
    let n = min(actual.count, reference.count, bound.count)
    r.count = n
    for i in 0..<n {
        let err = abs(Double(actual[i]) - reference[i])
        let allowed = bound[i] * boundSlack
        let ratio: Double = err == 0 ? 0 : (err.isNaN ? .infinity : (allowed > 0 ? err / allowed : .infinity))
        if r.worstIndex < 0 || ratio > r.worstRatio { r.worstRatio = ratio; r.worstIndex = i }
        if !(err <= allowed) {
            r.failures += 1
            if r.failures <= 5 {
                XCTFail("\(label)[\(i)]: \(actual[i]) vs reference \(reference[i]): |error| \(err) > bound \(allowed)",
                        file: file, line: line)
            }
        }
    }
    if r.failures > 5 { XCTFail("\(label): \(r.failures) of \(n) values outside their bounds", file: file, line: line) }
    return r
}

/// Float64 dot-product accumulator that also keeps the magnitude Σ|a·b| for `gamma`.
public struct BoundedSum {
    public var value = 0.0
    public var magnitude = 0.0
    public init(_ start: Double = 0) { value = start; magnitude = abs(start) }
    @inline(__always) public mutating func add(_ a: Double, _ b: Double) {
        let p = a * b
        value += p
        magnitude += abs(p)
    }
    @inline(__always) public mutating func add(_ a: Double) {
        value += a
        magnitude += abs(a)
    }
    /// The bound γ_n · Σ|terms| of a float32 evaluation of this sum with `terms` terms.
    public func bound(terms: Int) -> Double { gamma(terms) * magnitude }
}
