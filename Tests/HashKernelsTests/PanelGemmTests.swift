import XCTest
import NumericBounds
@testable import HashKernels

/// `PanelGemm.multiply` (the Winograd products): (1) every value is bitwise the chain
/// c ← madd(c, a[i, kk], b[kk, j]) over kk in increasing order from 0 (`MultiplyAdd.madd`, the
/// build's own rounding), at shapes off every tile and block edge (m not a multiple of 6, n an odd
/// multiple of 8, k from 1 to past the A cache block); (2) within the float32 bound
/// γ_{k+1}·Σ|a·b| of a float64 reference; (3) rows past m and columns past n of c are left alone;
/// (4) a column's values are the same bits when it is computed alone as in a wide call.
final class PanelGemmTests: XCTestCase {
    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in rng.uniform(-1, 1) }
    }

    /// A (m × k) and B (k × n), row-major, into the packed layouts (padding zero / NaN where
    /// the kernel must not read it into a stored value).
    private func pack(_ a: [Float], rows m: Int, _ b: [Float], cols n: Int, depth k: Int) -> ([Float], [Float]) {
        var ap = [Float](repeating: 0, count: PanelGemm.packedACount(rows: m, depth: k))
        for i in 0..<m { for kk in 0..<k { ap[PanelGemm.aIndex(row: i, k: kk, depth: k)] = a[i * k + kk] } }
        // Lanes 8…15 of a last half panel are never read: NaN there would show in every value.
        var bp = [Float](repeating: .nan, count: PanelGemm.packedBCount(depth: k, cols: n))
        for kk in 0..<k { for j in 0..<n { bp[PanelGemm.bIndex(k: kk, col: j, depth: k)] = b[kk * n + j] } }
        return (ap, bp)
    }

    /// c (m + 1 rows × ldc) after `multiply`, every entry it must not write NaN beforehand.
    private func multiply(_ ap: [Float], rows m: Int, _ bp: [Float], cols n: Int, depth k: Int, ldc: Int) -> [Float] {
        var c = [Float](repeating: .nan, count: (m + 1) * ldc)
        ap.withUnsafeBufferPointer { a in
            bp.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { cp in
                    PanelGemm.multiply(a: a.baseAddress!, rows: m, depth: k, b: b.baseAddress!, cols: n,
                                       c: cp.baseAddress!, ldc: ldc)
                }
            }
        }
        return c
    }

    /// (m, k, n): m below, at and off multiples of 6; n = 8 (one half panel), odd multiples of 8;
    /// k = 1, odd, and above the A block (`aBlockFloats` / 6 = 8192 columns per panel: k = 9000
    /// puts each panel in its own block).
    private let cases: [(Int, Int, Int)] = [(1, 1, 8), (5, 7, 24), (6, 33, 16), (13, 64, 40), (20, 9000, 8), (67, 130, 56)]

    func testEveryValueIsTheFixedChainWithinItsBound() {
        for (t, (m, k, n)) in cases.enumerated() {
            let a = random(m * k, seed: UInt64(100 + t)), b = random(k * n, seed: UInt64(200 + t))
            let (ap, bp) = pack(a, rows: m, b, cols: n, depth: k)
            let ldc = n + 5
            let c = multiply(ap, rows: m, bp, cols: n, depth: k, ldc: ldc)
            var chain = [Float](), got = [Float](), ref = [Double](), bound = [Double]()
            for i in 0..<m {
                for j in 0..<n {
                    var s: Float = 0
                    var exact = BoundedSum()
                    for kk in 0..<k {
                        s = MultiplyAdd.madd(s, a[i * k + kk], b[kk * n + j])
                        exact.add(Double(a[i * k + kk]), Double(b[kk * n + j]))
                    }
                    chain.append(s); got.append(c[i * ldc + j])
                    ref.append(exact.value); bound.append(exact.bound(terms: k + 1))
                }
                for j in n..<ldc { XCTAssertTrue(c[i * ldc + j].isNaN, "case \(t): c[\(i), \(j)] past n was written") }
            }
            for j in 0..<ldc { XCTAssertTrue(c[m * ldc + j].isNaN, "case \(t): row \(m) past m was written") }
            assertSameBits(got, chain, "case \(t) (m \(m), k \(k), n \(n)): the fixed madd chain")
            assertWithinBounds(got, ref, bound, "case \(t): float64 reference")
        }
    }

    /// Columns 24…31 of a 56-column call against the same 8 columns as the only ones.
    func testAColumnDoesNotDependOnTheOtherColumns() {
        let m = 19, k = 77, n = 56
        let a = random(m * k, seed: 7), b = random(k * n, seed: 8)
        let (ap, bp) = pack(a, rows: m, b, cols: n, depth: k)
        let wide = multiply(ap, rows: m, bp, cols: n, depth: k, ldc: n)
        let cols = 24..<32
        let narrowB = (0..<k).flatMap { kk in cols.map { b[kk * n + $0] } }
        let (_, bp8) = pack(a, rows: m, narrowB, cols: 8, depth: k)
        let narrow = multiply(ap, rows: m, bp8, cols: 8, depth: k, ldc: 8)
        for i in 0..<m {
            assertSameBits(narrow[(i * 8)..<(i * 8 + 8)], cols.map { wide[i * n + $0] }, "row \(i)")
        }
    }
}
