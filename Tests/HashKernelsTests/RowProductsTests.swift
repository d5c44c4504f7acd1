import XCTest
import NumericBounds
@testable import HashKernels

/// `RowProducts.dots` and `RowProducts.combinations` (the linear layer's forward and input
/// gradient): (1) every value within its float32 bound γ_n·Σ|terms| of a float64 reference
/// (NumericBounds), at sizes off every tile and block edge (k not a multiple of 8, rows not a
/// multiple of 4, output/column ranges not multiples of 2/16 and not starting at 0, m above the
/// 64-row block of `combinations`); values outside the requested range are left alone. (2) Their
/// promise: each value is bitwise the same whatever the number of rows computed together, the
/// row's position among them and the output/column range requested.
final class RowProductsTests: XCTestCase {
    private func random(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in rng.uniform(-1, 1) }
    }

    // MARK: dots

    /// y[i·ldy + o] for o in `outputs`, every other entry NaN.
    private func dots(_ x: [Float], rows n: Int, _ w: [Float], outputs: Range<Int>, k: Int, bias: [Float]?, ldy: Int) -> [Float] {
        var y = [Float](repeating: .nan, count: n * ldy)
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                y.withUnsafeMutableBufferPointer { yp in
                    if let bias {
                        bias.withUnsafeBufferPointer { bp in
                            RowProducts.dots(x: xp.baseAddress!, rows: n, w: wp.baseAddress!, outputs: outputs, k: k,
                                             bias: bp.baseAddress!, y: yp.baseAddress!, ldy: ldy)
                        }
                    } else {
                        RowProducts.dots(x: xp.baseAddress!, rows: n, w: wp.baseAddress!, outputs: outputs, k: k,
                                         bias: nil, y: yp.baseAddress!, ldy: ldy)
                    }
                }
            }
        }
        return y
    }

    /// Rows `rows` of x (n × k) alone.
    private func rowsOf(_ x: [Float], _ rows: Range<Int>, width k: Int) -> [Float] {
        Array(x[(rows.lowerBound * k)..<(rows.upperBound * k)])
    }

    /// (rows, k, outputs of O, with a bias): k below 8, at 8·j, and with tails; rows 1, 4·j, odd;
    /// k over several `dotChunk` chunks with a short last one, rows over several `dotRows` blocks
    /// with a short last one, outputs over several `dotOutputs` blocks with an odd last one.
    private let dotCases: [(Int, Int, Range<Int>, Int, Bool)] = [
        (18, 300, 3..<37, 40, true),
        (37, 1031, 1..<20, 23, false),
        (11, 77, 3..<20, 21, true),
        (13, 5, 0..<9, 9, true),
        (4, 64, 1..<18, 18, false),
        (1, 131, 0..<7, 7, true),
        (70, 19, 5..<14, 17, true),
    ]

    func testDotsMatchFloat64ReferenceWithinBounds() {
        for (c, (n, k, outputs, O, withBias)) in dotCases.enumerated() {
            let x = random(n * k, seed: UInt64(10 + c)), w = random(O * k, seed: UInt64(20 + c))
            let b: [Float]? = withBias ? random(O, seed: UInt64(30 + c)) : nil
            let ldy = O + 3
            let y = dots(x, rows: n, w, outputs: outputs, k: k, bias: b, ldy: ldy)
            var actual: [Float] = [], ref: [Double] = [], bound: [Double] = []
            for i in 0..<n {
                for o in 0..<ldy {
                    let v = y[i * ldy + o]
                    guard outputs.contains(o) else {
                        XCTAssertTrue(v.isNaN, "dots case \(c): y[\(i), \(o)] outside the outputs was written")
                        continue
                    }
                    var s = BoundedSum(Double(b?[o] ?? 0))
                    for t in 0..<k { s.add(Double(x[i * k + t]), Double(w[o * k + t])) }
                    actual.append(v); ref.append(s.value)
                    bound.append(s.bound(terms: k + (withBias ? 1 : 0)))   // k products, + the bias
                }
            }
            let r = assertWithinBounds(actual, ref, bound, "dots case \(c) (n \(n), k \(k), outputs \(outputs))")
            XCTAssertEqual(r.count, n * outputs.count)
        }
    }

    func testDotsAreIndependentOfRowsAndOutputRange() {
        // k = 300: three chunks of `dotChunk`, the last one short, and a 4-float tail.
        for k in [77, 300] { dotsIndependence(k: k) }
    }

    private func dotsIndependence(k: Int) {
        let n = 13, O = 37
        let x = random(n * k, seed: 1), w = random(O * k, seed: 2), b = random(O, seed: 3)
        let full = dots(x, rows: n, w, outputs: 0..<O, k: k, bias: b, ldy: O)
        // Each row alone, and runs of rows of several lengths at several positions (4-row tiles
        // and the single-row tail both take their turn at every row).
        var batches: [Range<Int>] = (0..<n).map { $0..<($0 + 1) }
        for len in [2, 3, 4, 5, 7, 8, 9, 12] { for start in [0, 1, 2, 3, n - len] where start + len <= n { batches.append(start..<(start + len)) } }
        for rows in batches {
            let y = dots(rowsOf(x, rows, width: k), rows: rows.count, w, outputs: 0..<O, k: k, bias: b, ldy: O)
            for (r, i) in rows.enumerated() {
                assertSameBits(y[(r * O)..<((r + 1) * O)], full[(i * O)..<((i + 1) * O)],
                               "dots: row \(i) computed in rows \(rows)")
            }
        }
        // The outputs in pieces: pairs shifted by an odd start, weight blocks of 8 shifted, one at a time.
        let splits: [[Range<Int>]] = [[0..<16, 16..<37], [0..<1, 1..<37], [0..<5, 5..<12, 12..<13, 13..<37],
                                      (0..<O).map { $0..<($0 + 1) }, [20..<37, 0..<20]]
        for split in splits {
            var y = [Float](repeating: .nan, count: n * O)
            x.withUnsafeBufferPointer { xp in
                w.withUnsafeBufferPointer { wp in
                    b.withUnsafeBufferPointer { bp in
                        y.withUnsafeMutableBufferPointer { yp in
                            for r in split {
                                RowProducts.dots(x: xp.baseAddress!, rows: n, w: wp.baseAddress!, outputs: r, k: k,
                                                 bias: bp.baseAddress!, y: yp.baseAddress!, ldy: O)
                            }
                        }
                    }
                }
            }
            assertSameBits(y[...], full[...], "dots: outputs in pieces \(split.map { "\($0)" })")
        }
    }

    // MARK: combinations

    /// dx[i·ldx + j] for j in `columns`, every other entry NaN.
    private func combinations(_ d: [Float], rows n: Int, m: Int, _ w: [Float], ldw: Int, columns: Range<Int>, ldx: Int) -> [Float] {
        var dx = [Float](repeating: .nan, count: n * ldx)
        d.withUnsafeBufferPointer { dp in
            w.withUnsafeBufferPointer { wp in
                dx.withUnsafeMutableBufferPointer { xp in
                    // m = 0: d and w may be empty; pass any valid pointer.
                    let dummy = UnsafeMutablePointer<Float>.allocate(capacity: 1)
                    defer { dummy.deallocate() }
                    RowProducts.combinations(d: dp.baseAddress ?? UnsafePointer(dummy), rows: n, m: m,
                                             w: wp.baseAddress ?? UnsafePointer(dummy), ldw: ldw,
                                             columns: columns, dx: xp.baseAddress!, ldx: ldx)
                }
            }
        }
        return dx
    }

    /// (rows, m, columns, ldw): m above, at and below the 64-row block, columns with and without
    /// 16-wide tiles and a scalar tail, starting off 0.
    private let combineCases: [(Int, Int, Range<Int>, Int)] = [
        (11, 150, 5..<42, 53),
        (13, 64, 0..<37, 37),
        (4, 65, 3..<19, 21),
        (1, 7, 0..<5, 5),
        (70, 129, 1..<50, 50),
        (6, 200, 0..<16, 16),
    ]

    func testCombinationsMatchFloat64ReferenceWithinBounds() {
        for (c, (n, m, columns, ldw)) in combineCases.enumerated() {
            let d = random(n * m, seed: UInt64(40 + c)), w = random(m * ldw, seed: UInt64(50 + c))
            let ldx = ldw + 2
            let dx = combinations(d, rows: n, m: m, w, ldw: ldw, columns: columns, ldx: ldx)
            var actual: [Float] = [], ref: [Double] = [], bound: [Double] = []
            for i in 0..<n {
                for j in 0..<ldx {
                    let v = dx[i * ldx + j]
                    guard columns.contains(j) else {
                        XCTAssertTrue(v.isNaN, "combinations case \(c): dx[\(i), \(j)] outside the columns was written")
                        continue
                    }
                    var s = BoundedSum()
                    for o in 0..<m { s.add(Double(d[i * m + o]), Double(w[o * ldw + j])) }
                    actual.append(v); ref.append(s.value); bound.append(s.bound(terms: m))
                }
            }
            let r = assertWithinBounds(actual, ref, bound, "combinations case \(c) (n \(n), m \(m), columns \(columns))")
            XCTAssertEqual(r.count, n * columns.count)
        }
        // m = 0: the empty sum.
        let z = combinations([], rows: 3, m: 0, [], ldw: 9, columns: 2..<7, ldx: 9)
        for i in 0..<3 { for j in 0..<9 {
            if (2..<7).contains(j) { XCTAssertEqual(z[i * 9 + j], 0) } else { XCTAssertTrue(z[i * 9 + j].isNaN) }
        } }
    }

    func testCombinationsAreIndependentOfRowsAndColumnRange() {
        let n = 13, m = 150, ldw = 37
        let d = random(n * m, seed: 5), w = random(m * ldw, seed: 6)
        let full = combinations(d, rows: n, m: m, w, ldw: ldw, columns: 0..<ldw, ldx: ldw)
        var batches: [Range<Int>] = (0..<n).map { $0..<($0 + 1) }
        for len in [2, 3, 4, 5, 7, 8, 9, 12] { for start in [0, 1, 2, 3, n - len] where start + len <= n { batches.append(start..<(start + len)) } }
        for rows in batches {
            let dx = combinations(rowsOf(d, rows, width: m), rows: rows.count, m: m, w, ldw: ldw, columns: 0..<ldw, ldx: ldw)
            for (r, i) in rows.enumerated() {
                assertSameBits(dx[(r * ldw)..<((r + 1) * ldw)], full[(i * ldw)..<((i + 1) * ldw)],
                               "combinations: row \(i) computed in rows \(rows)")
            }
        }
        // Columns in pieces: a column moves between the 16-wide tiles and the scalar tail.
        let splits: [[Range<Int>]] = [[0..<16, 16..<37], [0..<5, 5..<37], [0..<21, 21..<37], [30..<37, 0..<30],
                                      (0..<ldw).map { $0..<($0 + 1) }, [0..<1, 1..<17, 17..<33, 33..<37]]
        for split in splits {
            var dx = [Float](repeating: .nan, count: n * ldw)
            d.withUnsafeBufferPointer { dp in
                w.withUnsafeBufferPointer { wp in
                    dx.withUnsafeMutableBufferPointer { xp in
                        for r in split {
                            RowProducts.combinations(d: dp.baseAddress!, rows: n, m: m, w: wp.baseAddress!, ldw: ldw,
                                                     columns: r, dx: xp.baseAddress!, ldx: ldw)
                        }
                    }
                }
            }
            assertSameBits(dx[...], full[...], "combinations: columns in pieces \(split.map { "\($0)" })")
        }
        // A wider output row (ldx ≠ ldw) and rows of a larger d: same values.
        let ldx = ldw + 5
        let wide = combinations(d, rows: n, m: m, w, ldw: ldw, columns: 0..<ldw, ldx: ldx)
        for i in 0..<n {
            assertSameBits(wide[(i * ldx)..<(i * ldx + ldw)], full[(i * ldw)..<((i + 1) * ldw)], "combinations: ldx \(ldx), row \(i)")
        }
    }
}
