import XCTest
@testable import SAATCore

final class CodesTests: XCTestCase {
    /// Brute-force reference of the weighted sign, in Double, straight from the definitions.
    func reference(_ kind: SemanticCodes.Kind, y: [Float], codes: Tensor, labels: Tensor) -> [Float] {
        let n = codes.batch, k = codes.shape[1], c = labels.shape[1]
        var wp = [Double](repeating: 0, count: n), neg = [Bool](repeating: false, count: n)
        let yn = sqrt(y.reduce(0.0) { $0 + Double($1 * $1) })
        for j in 0..<n {
            var inter = 0.0, ln = 0.0
            for t in 0..<c { inter += Double(y[t] * labels.data[j * c + t]); ln += Double(labels.data[j * c + t] * labels.data[j * c + t]) }
            if inter > 0 { wp[j] = kind == .mainstay ? inter / (yn * sqrt(ln) + 1e-8) : 1 } else { neg[j] = true }
        }
        let ps = wp.reduce(0, +), nn = Double(neg.filter { $0 }.count)
        var out = [Float](repeating: 0, count: k)
        for t in 0..<k {
            var s = 0.0
            for j in 0..<n {
                let b = Double(codes.data[j * k + t])
                if wp[j] > 0 { s += wp[j] / ps * b } else if neg[j] { s -= b / nn }
            }
            out[t] = s > 1e-9 ? 1 : (s < -1e-9 ? -1 : 0)
        }
        return out
    }

    func testMainstayAndCenterMatchBruteForce() throws {
        let codes = randomCodes(40, 24, seed: 1), labels = randomLabels(40, 6, seed: 2), q = randomLabels(7, 6, seed: 3)
        for kind in [SemanticCodes.Kind.mainstay, .center] {
            let got = try SemanticCodes.compute(kind, labels: q, trainCodes: codes, trainLabels: labels)
            XCTAssertEqual(got.shape, [7, 24])
            for i in 0..<7 {
                let ref = reference(kind, y: Array(q.data[(i * 6)..<(i * 6 + 6)]), codes: codes, labels: labels)
                XCTAssertEqual(Array(got.data[(i * 24)..<(i * 24 + 24)]), ref, "\(kind) row \(i)")
            }
        }
    }

    func testExactTieGivesZeroAndEmptySetsAreHandled() throws {
        // Two positives with opposite codes and no negatives: every bit ties → 0.
        let codes = Tensor(shape: [2, 3], data: [1, 1, -1, -1, -1, 1])
        let labels = Tensor(shape: [2, 2], data: [1, 0, 1, 0])
        let y = Tensor(shape: [1, 2], data: [1, 0])
        XCTAssertEqual(try SemanticCodes.compute(.center, labels: y, trainCodes: codes, trainLabels: labels).data, [0, 0, 0])
        // No positives: minus the mean negative code.
        let y2 = Tensor(shape: [1, 2], data: [0, 1])
        let three = Tensor(shape: [3, 2], data: [1, -1, 1, 1, -1, 1])
        let l3 = Tensor(shape: [3, 2], data: [1, 0, 1, 0, 1, 0])
        XCTAssertEqual(try SemanticCodes.compute(.mainstay, labels: y2, trainCodes: three, trainLabels: l3).data, [-1, -1])
        // Empty label row behaves as "no positives".
        let y3 = Tensor(shape: [1, 2], data: [0, 0])
        XCTAssertEqual(try SemanticCodes.compute(.center, labels: y3, trainCodes: three, trainLabels: l3).data, [-1, -1])
    }

    func testMainstayWeightsBySemanticSimilarity() throws {
        // Item 0 shares 1 of 2 labels (cos 0.5), item 1 shares 2 of 2 (cos 1): item 1 dominates for the
        // mainstay code, while the center code (uniform) ties and gives 0.
        let codes = Tensor(shape: [2, 1], data: [1, -1])
        let labels = Tensor(shape: [2, 2], data: [1, 0, 1, 1])
        let y = Tensor(shape: [1, 2], data: [1, 1])
        XCTAssertEqual(try SemanticCodes.compute(.mainstay, labels: y, trainCodes: codes, trainLabels: labels).data, [-1])
        XCTAssertEqual(try SemanticCodes.compute(.center, labels: y, trainCodes: codes, trainLabels: labels).data, [0])
    }

    func testRejectsMismatchedShapes() {
        let codes = randomCodes(5, 8, seed: 1)
        XCTAssertThrowsError(try SemanticCodes.compute(.center, labels: randomLabels(2, 3, seed: 1), trainCodes: codes,
                                                       trainLabels: randomLabels(5, 4, seed: 2)))
        XCTAssertThrowsError(try SemanticCodes.compute(.center, labels: randomLabels(2, 4, seed: 1), trainCodes: codes,
                                                       trainLabels: randomLabels(4, 4, seed: 2)))
    }
}
