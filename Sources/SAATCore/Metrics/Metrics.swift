/// Retrieval metrics of the SAAT / CgAT evaluation protocol, on Hamming
/// rankings with ties broken by ascending database index (see `Retrieval.swift`).
///
/// Sources (formulas re-expressed, no code copied):
/// - MAP@k: SAAT utils/hamming_matching.py `cal_map` (github.com/xandery-geek/SAAT),
///   CgAT utils/hamming_matching.py `CalcTopMap` (github.com/xunguangwang/CgAT),
///   DeepHash-pytorch utils/tools.py `CalcTopMap` (github.com/swuxyj/DeepHash-pytorch).
/// - PR curve: SAAT utils/hamming_matching.py `cal_pr` (interval 0.01 as in SAAT metrics.py).
/// - P@N: SAAT utils/hamming_matching.py `cal_top_n` (N = 100, 110, …, 1000 in SAAT metrics.py).
///
/// Every function takes the query and database sides already packed (`RetrievalSet`). Argument
/// names in errors are those of the Python API (`query_codes`, `db_codes`, `query_labels`,
/// `db_labels`, `k`, `n`). Queries are processed in parallel (`threads` ≤ 0: all online CPUs);
/// results are bitwise identical for any thread count.
public enum Metrics {
    /// Queries per parallel chunk.
    static let chunk = 8
    /// Below this many query×database pairs the loops stay on the calling thread.
    static let parallelThreshold = 1 << 20

    static func threadsFor(_ threads: Int, nq: Int, nd: Int) -> Int {
        nq * nd < parallelThreshold ? 1 : threads
    }

    static func checkCodes(_ q: RetrievalSet, _ db: RetrievalSet) throws {
        try require(db.count >= 1, "db_codes", "at least one database code, got 0")
        try require(db.count <= Int(Int32.max), "db_codes", "at most \(Int32.max) database codes, got \(db.count)")
        try require(q.bits == db.bits, "db_codes", "codes of \(q.bits) bits like query_codes, got \(db.bits) bits")
    }

    static func checkLabelled(_ q: RetrievalSet, _ db: RetrievalSet) throws {
        try checkCodes(q, db)
        try require(q.count >= 1, "query_codes", "at least one query, got 0")
        try require(q.classes >= 1, "query_labels", "label rows with at least one class")
        try require(db.classes == q.classes, "db_labels",
                    "labels of \(q.classes) classes like query_labels, got \(db.classes)")
    }

    /// The loop every metric shares: queries in parallel chunks of `chunk`; for each query i the
    /// database ranked to `depth` (ascending Hamming distance, ties by index), handed to the
    /// visitor that `perChunk(c)` makes once for chunk c (so it can keep per-chunk scratch), with
    /// `relevant(p)` = whether the item at rank p shares a label with the query (labelled sets only).
    static func scan(_ query: RetrievalSet, _ database: RetrievalSet, depth: Int, threads: Int,
                     _ perChunk: (_ chunk: Int) -> (_ i: Int, _ ranked: UnsafeBufferPointer<Int32>,
                                                    _ relevant: (Int) -> Bool) -> Void) {
        let nq = query.count, nd = database.count
        query.codes.withUnsafeBufferPointer { qc in
        database.codes.withUnsafeBufferPointer { dc in
        query.labels.withUnsafeBufferPointer { ql in
        database.labels.withUnsafeBufferPointer { dl in
            let qw = query.codeWords, lw = query.labelWords
            ParallelFor.run(count: nq, chunk: chunk, threads: threadsFor(threads, nq: nq, nd: nd)) { c, range in
                var ranker = HammingRanker(nd: nd, bits: query.bits, k: depth)
                let visit = perChunk(c)
                for i in range {
                    ranker.rank(query: qc.baseAddress! + i * qw, database: dc.baseAddress!)
                    ranker.ranked.withUnsafeBufferPointer { r in
                        guard lw > 0 else { return visit(i, r) { _ in false } }
                        let qlab = ql.baseAddress! + i * lw
                        visit(i, r) { p in RetrievalSet.share(qlab, dl.baseAddress! + Int(r[p]) * lw, lw) }
                    }
                }
            }
        }}}}
    }

    /// Per-chunk partial sums (`chunks` × `width`, summed in chunk order so the result does not
    /// depend on the thread count), averaged over the `count` queries.
    static func average(_ partial: [Double], chunks: Int, width: Int, count: Int) -> [Double] {
        var out = [Double](repeating: 0, count: width)
        for c in 0..<chunks { for t in 0..<width { out[t] += partial[c * width + t] } }
        return out.map { $0 / Double(count) }
    }

    // MARK: MAP@k

    /// Mean average precision over the top k of each query's Hamming ranking:
    ///
    ///     rel_i = [y_qᵀ y_iᵈᵇ > 0];  g = rel in ranked order, first k;  R = Σ g
    ///     AP_q = 0 if R == 0 (the query still counts), else (1/R) Σ_{r=1…R} r / pos_r
    ///     MAP  = (1/n_q) Σ_q AP_q            (pos_r = 1-based rank of the r-th relevant item)
    ///
    /// k > N (database size) means k = N (full MAP, CgAT `CalcMap`). t-MAP is this function with the
    /// target labels passed as `query` labels. `apOut`, when given, receives the n_q per-query APs.
    /// Throws for k < 1, mismatched code widths or label widths, an empty query or database set.
    public static func mapAtK(query: RetrievalSet, database: RetrievalSet, k: Int,
                              apOut: UnsafeMutablePointer<Double>? = nil, threads: Int = 0) throws -> Double {
        try require(k >= 1, "k", "k >= 1, got \(k)")
        try checkLabelled(query, database)
        let nq = query.count, nd = database.count, kk = min(k, nd)
        let ap = UnsafeMutablePointer<Double>.allocate(capacity: nq)
        defer { ap.deallocate() }
        scan(query, database, depth: kk, threads: threads) { _ in
            { i, _, relevant in
                var found = 0
                var sum = 0.0
                for p in 0..<kk where relevant(p) {
                    found += 1
                    sum += Double(found) / Double(p + 1)
                }
                ap[i] = found == 0 ? 0 : sum / Double(found)
            }
        }
        var total = 0.0
        for i in 0..<nq { total += ap[i] }
        apOut?.update(from: ap, count: nq)
        return total / Double(nq)
    }

    /// Array convenience: (MAP, per-query APs).
    public static func mapAtK(query: RetrievalSet, database: RetrievalSet, k: Int,
                              threads: Int = 0) throws -> (map: Double, ap: [Double]) {
        var ap = [Double](repeating: 0, count: max(query.count, 1))
        let m = try ap.withUnsafeMutableBufferPointer {
            try mapAtK(query: query, database: database, k: k, apOut: $0.baseAddress!, threads: threads)
        }
        return (m, Array(ap.prefix(query.count)))
    }

    // MARK: precision-recall

    /// Number of recall levels of `prCurve`: 0.01, 0.02, …, 1.00.
    public static let prLevels = 100

    /// Precision at recall levels rₗ = l · 0.01 (l = 1…100), averaged over queries (SAAT `cal_pr`):
    ///
    ///     full ranking of the database; n_rel = number of relevant items in the database
    ///     m_l = trunc(n_rel · rₗ)   computed in float64 exactly as SAAT does (int32 cast of
    ///                               n_rel * (l * 0.01)), so e.g. n_rel = 100 at l = 29 gives
    ///                               m = 28 because 29 * 0.01 * 100 = 28.999999999999996
    ///     P_q(rₗ) = m_l / (1-based rank of the m_l-th relevant item)
    ///     precision[l] = (1/n_q) Σ_q P_q(rₗ),   recall[l] = rₗ
    ///
    /// Deviation: when m_l = 0 (no relevant item, or n_rel · rₗ < 1) the term is 0 — the value of
    /// SAAT's expression 0 / position — including the case where SAAT's lookup of "the first rank
    /// with 0 true positives" fails because rank 1 is relevant (an IndexError there). Queries
    /// without any relevant item are counted with precision 0.
    public static func prCurve(query: RetrievalSet, database: RetrievalSet,
                               threads: Int = 0) throws -> (precision: [Double], recall: [Double]) {
        try checkLabelled(query, database)
        let nq = query.count, nd = database.count, L = prLevels
        let chunks = (nq + chunk - 1) / chunk
        var partial = [Double](repeating: 0, count: chunks * L)
        let recall = (1...L).map { Double($0) * 0.01 }
        partial.withUnsafeMutableBufferPointer { part in
            scan(query, database, depth: nd, threads: threads) { c in
                var relRank = [Int](repeating: 0, count: nd)   // 1-based ranks of relevant items, in order
                let acc = part.baseAddress! + c * L
                return { _, _, relevant in
                    var nrel = 0
                    for p in 0..<nd where relevant(p) {
                        relRank[nrel] = p + 1
                        nrel += 1
                    }
                    if nrel == 0 { return }
                    for l in 0..<L {
                        let m = Int(Double(nrel) * recall[l])
                        if m > 0 { acc[l] += Double(m) / Double(relRank[m - 1]) }
                    }
                }
            }
        }
        let precision = average(partial, chunks: chunks, width: L, count: nq)
        return (precision, recall)
    }

    // MARK: precision at N

    /// Precision within the first N retrieved items, averaged over queries, for each N in `ns`
    /// (SAAT `cal_top_n`; SAAT metrics.py uses N = 100, 110, …, 1000):
    ///
    ///     P_q(N) = (number of relevant items among ranks 1…N) / N
    ///
    /// Deviation: N > database size (where SAAT's indexing fails) gives the precision of the whole
    /// database, n_rel / N_db, i.e. N is clamped to N_db. Every N must be ≥ 1 (argument `n`).
    public static func precisionAtN(query: RetrievalSet, database: RetrievalSet, ns: [Int],
                                    threads: Int = 0) throws -> [Double] {
        try checkLabelled(query, database)
        try require(!ns.isEmpty, "n", "at least one N")
        for v in ns { try require(v >= 1, "n", "every N >= 1, got \(v)") }
        let nq = query.count, nd = database.count
        let eff = ns.map { min($0, nd) }
        let kmax = eff.max()!
        let nn = ns.count
        let chunks = (nq + chunk - 1) / chunk
        var partial = [Double](repeating: 0, count: chunks * nn)
        partial.withUnsafeMutableBufferPointer { part in
            scan(query, database, depth: kmax, threads: threads) { c in
                var cum = [Int](repeating: 0, count: kmax + 1)   // cum[p] = relevant among ranks 1…p
                let acc = part.baseAddress! + c * nn
                return { _, _, relevant in
                    var tp = 0
                    for p in 0..<kmax {
                        if relevant(p) { tp += 1 }
                        cum[p + 1] = tp
                    }
                    for t in 0..<nn { acc[t] += Double(cum[eff[t]]) / Double(eff[t]) }
                }
            }
        }
        return average(partial, chunks: chunks, width: nn, count: nq)
    }

    // MARK: ranking

    /// The first k database indices of each query's ranking (ascending Hamming distance, ties by
    /// ascending index) into `out`, row-major (n_q, k) int64. Requires 1 ≤ k ≤ N (callers clamp).
    /// Labels are not used.
    public static func hammingRank(query: RetrievalSet, database: RetrievalSet, k: Int,
                                   out: UnsafeMutablePointer<Int64>, threads: Int = 0) throws {
        try checkCodes(query, database)
        try require(k >= 1 && k <= database.count, "k", "1 <= k <= \(database.count) (database size), got \(k)")
        scan(query, database, depth: k, threads: threads) { _ in
            { i, ranked, _ in
                let row = out + i * k
                for p in 0..<k { row[p] = Int64(ranked[p]) }
            }
        }
    }

    /// Array convenience of `hammingRank`: (n_q · min(k, N)) indices, row-major.
    public static func hammingRank(query: RetrievalSet, database: RetrievalSet, k: Int,
                                   threads: Int = 0) throws -> [Int64] {
        try require(k >= 1, "k", "k >= 1, got \(k)")
        let kk = min(k, max(database.count, 1))
        var out = [Int64](repeating: -1, count: max(query.count * kk, 1))
        try out.withUnsafeMutableBufferPointer {
            try hammingRank(query: query, database: database, k: kk, out: $0.baseAddress!, threads: threads)
        }
        return Array(out.prefix(query.count * kk))
    }
}
