import XCTest
@testable import SAATCore

/// Hand-computed cases for the Hamming-ranking metrics, then a brute-force reference
/// (comparison sort by (distance, index)) on random data.
final class MetricsTests: XCTestCase {
    // 4-bit database with ties. Distances from q1 = ++++: [0, 1, 0, 2, 1] → stable ranking 0,2,1,4,3.
    // Distances from q2 = ----: [4, 3, 4, 2, 3] → ranking 3,1,4,0,2.
    let db: [Int8] = [1, 1, 1, 1,  -1, 1, 1, 1,  1, 1, 1, 1,  -1, -1, 1, 1,  1, -1, 1, 1]
    let dbLabels: [UInt8] = [0, 1,  1, 0,  1, 1,  1, 0,  0, 1]
    let q1: [Int8] = [1, 1, 1, 1]
    let q2: [Int8] = [-1, -1, -1, -1]

    func set(_ codes: [Int8], _ labels: [UInt8]) throws -> RetrievalSet {
        try RetrievalSet(codes: codes, bits: 4, labels: labels, classes: 2)
    }

    func testRankingBreaksTiesByIndex() throws {
        let d = try set(db, dbLabels), q = try set(q1 + q2, [1, 0, 0, 1])
        XCTAssertEqual(try Metrics.hammingRank(query: q, database: d, k: 5), [0, 2, 1, 4, 3, 3, 1, 4, 0, 2])
        XCTAssertEqual(try Metrics.hammingRank(query: q, database: d, k: 3), [0, 2, 1, 3, 1, 4])
        // k = 1 keeps the lowest index of the nearest bucket; k > N is clamped by the array convenience.
        XCTAssertEqual(try Metrics.hammingRank(query: q, database: d, k: 1), [0, 3])
        XCTAssertEqual(try Metrics.hammingRank(query: q, database: d, k: 9).count, 10)
    }

    func testMapWithTiesHandComputed() throws {
        let d = try set(db, dbLabels)
        // q1 label {0}: relevant db 1,2,3 → at ranks 2,3,5. AP@5 = (1/2 + 2/3 + 3/5)/3.
        // q2 label {1}: relevant db 0,2,4 → ranking 3,1,4,0,2 puts them at ranks 3,4,5.
        let q = try set(q1 + q2, [1, 0, 0, 1])
        let ap1 = (1.0 / 2 + 2.0 / 3 + 3.0 / 5) / 3, ap2 = (1.0 / 3 + 2.0 / 4 + 3.0 / 5) / 3
        let r = try Metrics.mapAtK(query: q, database: d, k: 5)
        XCTAssertEqual(r.ap[0], ap1, accuracy: 1e-15)
        XCTAssertEqual(r.ap[1], ap2, accuracy: 1e-15)
        XCTAssertEqual(r.map, (ap1 + ap2) / 2, accuracy: 1e-15)
        // Top 3: q1 keeps ranks 2,3 → (1/2 + 2/3)/2; q2 keeps rank 3 → 1/3.
        let r3 = try Metrics.mapAtK(query: q, database: d, k: 3)
        XCTAssertEqual(r3.ap[0], (1.0 / 2 + 2.0 / 3) / 2, accuracy: 1e-15)
        XCTAssertEqual(r3.ap[1], 1.0 / 3, accuracy: 1e-15)
        // k = 1: no relevant item at rank 1 for either → AP 0, MAP 0.
        XCTAssertEqual(try Metrics.mapAtK(query: q, database: d, k: 1).map, 0)
        // k > N behaves as k = N.
        let big = try Metrics.mapAtK(query: q, database: d, k: 1000)
        XCTAssertEqual(big.ap, r.ap)
    }

    func testNoRelevantQueryCountsAsZeroAndAllRelevantIsOne() throws {
        let d = try set(db, dbLabels)
        let q = try set(q1 + q2 + q1, [1, 0, 0, 0, 1, 1])   // q2 has no label, q1 (third) shares with all
        let r = try Metrics.mapAtK(query: q, database: d, k: 5)
        let ap1 = (1.0 / 2 + 2.0 / 3 + 3.0 / 5) / 3
        XCTAssertEqual(r.ap[1], 0)
        XCTAssertEqual(r.ap[2], 1, accuracy: 1e-15)
        XCTAssertEqual(r.map, (ap1 + 0 + 1) / 3, accuracy: 1e-15)
    }

    func testPrecisionRecallHandComputed() throws {
        let d = try set(db, dbLabels)
        let q = try set(q1, [1, 0])          // relevant at ranks 2,3,5; n_rel = 3
        let (p, r) = try Metrics.prCurve(query: q, database: d)
        XCTAssertEqual(p.count, 100)
        XCTAssertEqual(r[0], 0.01)
        XCTAssertEqual(r[99], 1.0)
        // m = trunc(3 r): 0 for r ≤ 0.33, 1 up to 0.66, 2 up to 0.99, 3 at 1.0.
        XCTAssertEqual(p[32], 0)                       // r = 0.33
        XCTAssertEqual(p[33], 1.0 / 2, accuracy: 1e-15) // r = 0.34
        XCTAssertEqual(p[65], 1.0 / 2, accuracy: 1e-15) // r = 0.66
        XCTAssertEqual(p[66], 2.0 / 3, accuracy: 1e-15) // r = 0.67
        XCTAssertEqual(p[98], 2.0 / 3, accuracy: 1e-15) // r = 0.99
        XCTAssertEqual(p[99], 3.0 / 5, accuracy: 1e-15) // r = 1.00
    }

    func testPrecisionAtNClampsToDatabase() throws {
        let d = try set(db, dbLabels)
        let q = try set(q1 + q2, [1, 0, 0, 1])
        // q1 relevance by rank: 0 1 1 0 1; q2: 0 0 1 1 1.
        let p = try Metrics.precisionAtN(query: q, database: d, ns: [1, 2, 3, 5, 7])
        XCTAssertEqual(p[0], 0)
        XCTAssertEqual(p[1], (1.0 / 2 + 0) / 2, accuracy: 1e-15)
        XCTAssertEqual(p[2], (2.0 / 3 + 1.0 / 3) / 2, accuracy: 1e-15)
        XCTAssertEqual(p[3], (3.0 / 5 + 3.0 / 5) / 2, accuracy: 1e-15)
        XCTAssertEqual(p[4], p[3])
    }

    func testBadInputThrowsNamingTheArgument() throws {
        XCTAssertThrowsError(try RetrievalSet(codes: [1, 0, 1, 1], bits: 4, codesName: "query_codes")) {
            XCTAssertEqual($0 as? SAATError, .invalidArgument("query_codes", "codes of exactly -1 or +1, got 0 at flat index 1"))
        }
        XCTAssertThrowsError(try RetrievalSet(codes: [1, 1, 1, 1], bits: 4, labels: [2, 0], classes: 2, labelsName: "db_labels")) {
            guard case .invalidArgument("db_labels", _)? = $0 as? SAATError else { return XCTFail("\($0)") }
        }
        let d = try set(db, dbLabels), q = try set(q1, [1, 0])
        XCTAssertThrowsError(try Metrics.mapAtK(query: q, database: d, k: 0)) {
            guard case .invalidArgument("k", _)? = $0 as? SAATError else { return XCTFail("\($0)") }
        }
        let q8 = try RetrievalSet(codes: [Int8](repeating: 1, count: 8), bits: 8, labels: [1, 0], classes: 2)
        XCTAssertThrowsError(try Metrics.mapAtK(query: q8, database: d, k: 5)) {
            guard case .invalidArgument("db_codes", _)? = $0 as? SAATError else { return XCTFail("\($0)") }
        }
        let q3 = try RetrievalSet(codes: q1, bits: 4, labels: [1, 0, 0], classes: 3)
        XCTAssertThrowsError(try Metrics.prCurve(query: q3, database: d)) {
            guard case .invalidArgument("db_labels", _)? = $0 as? SAATError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try Metrics.precisionAtN(query: q, database: d, ns: [10, 0])) {
            guard case .invalidArgument("n", _)? = $0 as? SAATError else { return XCTFail("\($0)") }
        }
    }

    // MARK: random data against a brute-force reference

    struct LCG {
        var s: UInt64
        mutating func next() -> UInt64 { s = s &* 6364136223846793005 &+ 1442695040888963407; return s >> 33 }
    }

    func randomSet(_ n: Int, bits: Int, classes: Int, rng: inout LCG) throws -> (RetrievalSet, [Int8], [UInt8]) {
        let c: [Int8] = (0..<(n * bits)).map { _ in rng.next() & 1 == 1 ? 1 : -1 }
        let l: [UInt8] = (0..<(n * classes)).map { _ in rng.next() % 5 == 0 ? 1 : 0 }
        return (try RetrievalSet(codes: c, bits: bits, labels: l, classes: classes), c, l)
    }

    func testRandomAgainstBruteForce() throws {
        var rng = LCG(s: 42)
        for (bits, classes, nd, k) in [(16, 5, 300, 50), (100, 70, 257, 300), (64, 20, 1000, 1000), (8, 3, 64, 7)] {
            let nq = 9
            let (q, qc, ql) = try randomSet(nq, bits: bits, classes: classes, rng: &rng)
            let (d, dc, dl) = try randomSet(nd, bits: bits, classes: classes, rng: &rng)
            let ranks = try Metrics.hammingRank(query: q, database: d, k: k)
            let kk = min(k, nd)
            let res = try Metrics.mapAtK(query: q, database: d, k: k)
            let pAtN = try Metrics.precisionAtN(query: q, database: d, ns: [1, 10, 33, nd, nd + 5])
            var mapRef = 0.0
            var pRef = [Double](repeating: 0, count: 5)
            for i in 0..<nq {
                let dist = (0..<nd).map { j in (0..<bits).reduce(0) { $0 + (qc[i * bits + $1] == dc[j * bits + $1] ? 0 : 1) } }
                let order = (0..<nd).sorted { (dist[$0], $0) < (dist[$1], $1) }
                XCTAssertEqual(ranks[(i * kk)..<((i + 1) * kk)].map(Int.init), Array(order.prefix(kk)), "bits \(bits) query \(i)")
                let rel = order.map { j in (0..<classes).contains { ql[i * classes + $0] == 1 && dl[j * classes + $0] == 1 } }
                var found = 0, s = 0.0
                for p in 0..<kk where rel[p] { found += 1; s += Double(found) / Double(p + 1) }
                let ap = found == 0 ? 0 : s / Double(found)
                XCTAssertEqual(res.ap[i], ap, accuracy: 1e-12)
                mapRef += ap
                for (t, n) in [1, 10, 33, nd, nd + 5].enumerated() {
                    let ne = min(n, nd)
                    pRef[t] += Double(rel.prefix(ne).filter { $0 }.count) / Double(ne)
                }
            }
            XCTAssertEqual(res.map, mapRef / Double(nq), accuracy: 1e-12)
            for t in 0..<5 { XCTAssertEqual(pAtN[t], pRef[t] / Double(nq), accuracy: 1e-12) }
        }
    }

    func testThreadCountDoesNotChangeResults() throws {
        var rng = LCG(s: 7)
        let (q, _, _) = try randomSet(130, bits: 32, classes: 10, rng: &rng)
        let (d, _, _) = try randomSet(9000, bits: 32, classes: 10, rng: &rng)   // 130·9000 > parallel threshold
        let a = try Metrics.mapAtK(query: q, database: d, k: 500, threads: 1)
        let b = try Metrics.mapAtK(query: q, database: d, k: 500, threads: 2)
        XCTAssertEqual(a.map, b.map)
        XCTAssertEqual(a.ap, b.ap)
        XCTAssertEqual(try Metrics.prCurve(query: q, database: d, threads: 1).precision,
                       try Metrics.prCurve(query: q, database: d, threads: 3).precision)
        XCTAssertEqual(try Metrics.hammingRank(query: q, database: d, k: 100, threads: 1),
                       try Metrics.hammingRank(query: q, database: d, k: 100, threads: 2))
    }
}
