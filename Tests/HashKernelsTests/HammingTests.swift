import XCTest
@testable import HashKernels

final class HammingTests: XCTestCase {
    /// Deterministic ±1 codes.
    private func codes(_ n: Int, _ bits: Int, seed: UInt64) -> [Int8] {
        var s = seed &+ 0x9E3779B97F4A7C15
        return (0..<(n * bits)).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return (s >> 33) & 1 == 1 ? 1 : -1
        }
    }

    func testDistancesEqualHalfOfKMinusInnerProduct() {
        for bits in [1, 12, 32, 64, 65, 128, 130] {
            let nq = 5, nd = 17, w = Hamming.words(bits)
            let q = codes(nq, bits, seed: UInt64(bits)), d = codes(nd, bits, seed: UInt64(bits) + 99)
            var qp = [UInt64](repeating: 0, count: nq * w), dp = [UInt64](repeating: 0, count: nd * w)
            Hamming.pack(codes: q, n: nq, bits: bits, out: &qp)
            Hamming.pack(codes: d, n: nd, bits: bits, out: &dp)
            var out = [Int32](repeating: -1, count: nq * nd)
            Hamming.distances(query: qp, nq: nq, database: dp, nd: nd, words: w, out: &out)
            for i in 0..<nq {
                for j in 0..<nd {
                    var dot = 0
                    for b in 0..<bits { dot += Int(q[i * bits + b]) * Int(d[j * bits + b]) }
                    XCTAssertEqual(Int(out[i * nd + j]), (bits - dot) / 2, "bits \(bits) pair \(i),\(j)")
                }
            }
        }
    }

    func testFloatPackTreatsZeroAndNaNAsMinusOne() {
        let v: [Float] = [0.5, 0, -0.1, .nan, 2]
        var out = [UInt64](repeating: 0, count: 1)
        Hamming.pack(codes: v, n: 1, bits: 5, out: &out)
        XCTAssertEqual(out[0], 0b10001)
    }

    func testSgemmTransposes() {
        // A (2x3), B (3x2): C = A·B
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [7, 8, 9, 10, 11, 12]
        var c = [Float](repeating: 0, count: 4)
        BLAS.sgemm(m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 2, c: &c, ldc: 2)
        XCTAssertEqual(c, [58, 64, 139, 154])
        // Aᵀ (3x2) is stored as A; C' = Aᵀ·A (3x3)... use transA with B = A (2x3): (3x2)(2x3)
        var c2 = [Float](repeating: 0, count: 9)
        BLAS.sgemm(transA: true, m: 3, n: 3, k: 2, a: a, lda: 3, b: a, ldb: 3, c: &c2, ldc: 3)
        XCTAssertEqual(c2, [17, 22, 27, 22, 29, 36, 27, 36, 45])
    }
}
