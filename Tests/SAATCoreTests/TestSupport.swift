import XCTest
import NumericBounds
@testable import SAATCore

/// Central-difference gradient of a scalar function of a float tensor, evaluated in Float with
/// step h (callers pick h and tolerances for float32 noise).
func centralDifference(_ x: Tensor, h: Float = 1e-3, indices: [Int]? = nil, _ f: (Tensor) -> Double) -> [Int: Double] {
    var out: [Int: Double] = [:]
    for i in indices ?? Array(0..<x.count) {
        var xp = x, xm = x
        xp.data[i] += h
        xm.data[i] -= h
        out[i] = (f(xp) - f(xm)) / Double(2 * h)
    }
    return out
}

// randomTensor(_:seed:lo:hi:) lives in GradCheck.swift.

/// Random multi-hot labels with at least one class per row.
func randomLabels(_ n: Int, _ c: Int, seed: UInt64) -> Tensor {
    var rng = SeededRNG(seed: seed)
    var t = Tensor(zeros: [n, c])
    for i in 0..<n {
        t.data[i * c + rng.below(c)] = 1
        if rng.uniform() < 0.4 { t.data[i * c + rng.below(c)] = 1 }
    }
    return t
}

func randomCodes(_ n: Int, _ k: Int, seed: UInt64) -> Tensor {
    var rng = SeededRNG(seed: seed)
    return Tensor(shape: [n, k], data: (0..<(n * k)).map { _ in rng.uniform() < 0.5 ? -1 : 1 })
}

func assertClose(_ a: Double, _ b: Double, rtol: Double, atol: Double, _ msg: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertLessThanOrEqual(abs(a - b), atol + rtol * abs(b), "\(msg): \(a) vs \(b)", file: file, line: line)
}

extension XCTestCase {
    /// Asserts that the bound reports of a layer check (`checkLayersAgainstReference`) cover
    /// exactly the output, the input and the parameters `names`, each with at least one value.
    func assertCovers(_ r: [String: BoundReport], _ names: [String], _ label: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(r.keys), Set(["output", "input"] + names), label, file: file, line: line)
        for (k, v) in r { XCTAssertGreaterThan(v.count, 0, "\(label) \(k)", file: file, line: line) }
    }
}
