// Hamming-ranking retrieval: codes and multi-hot labels packed to bits once, then a per-query
// counting sort of the database by Hamming distance.
//
// Relevance (SAAT utils/hamming_matching.py, CgAT utils/hamming_matching.py,
// DeepHash-pytorch utils/tools.py CalcTopMap): database item i is relevant to a query with label
// vector y_q iff y_qᵀ y_i > 0, i.e. the two multi-hot vectors share at least one class. With the
// labels packed to bits this is one AND + non-zero test per word.
//
// Ranking: ascending Hamming distance d_H(b_q, b_i) = popcount(b_q XOR b_i) = ½(K − b_qᵀ b_i),
// **ties broken by ascending database index** (a stable order). The official scripts use numpy's
// default (unstable) `argsort`, whose tie order is unspecified; see the "Ties" note in data.md.
// The stable order is the one numpy `argsort(kind="stable")` and faiss `IndexBinaryFlat` produce.

/// One side (queries or database) of a retrieval evaluation, bit-packed.
///
/// Layouts: `codes` holds `count` rows of `codeWords = ⌈bits/64⌉` UInt64 words (bit j of word
/// j/64 is 1 for +1; see `Hamming.pack`); `labels` holds `count` rows of `labelWords = ⌈classes/64⌉`
/// words (bit c set iff class c is present), empty when `classes == 0`.
public struct RetrievalSet {
    public let count: Int
    public let bits: Int
    public let codeWords: Int
    public let classes: Int
    public let labelWords: Int
    public private(set) var codes: [UInt64]
    public private(set) var labels: [UInt64]

    /// Packs `count` ±1 codes (row-major `(count, bits)` int8, each value exactly −1 or +1) and,
    /// when `labels` is given, `count` multi-hot label rows (row-major `(count, classes)` uint8,
    /// each value 0 or 1). Values outside those sets throw `invalidArgument` naming `codesName`
    /// / `labelsName` with the first offending flat index.
    public init(codes: UnsafePointer<Int8>, count: Int, bits: Int,
                labels: UnsafePointer<UInt8>?, classes: Int,
                codesName: String = "codes", labelsName: String = "labels") throws {
        try require(count >= 0, codesName, "a non-negative number of codes, got \(count)")
        try require(bits >= 1, codesName, "codes with at least one bit, got \(bits)")
        try require(classes >= 0, labelsName, "a non-negative number of classes, got \(classes)")
        try require(labels != nil || classes == 0, labelsName, "label rows for \(classes) classes")
        try RetrievalSet.checkPlusMinusOne(codes, count * bits, codesName)
        if let labels { try RetrievalSet.checkZeroOne(labels, count * classes, labelsName) }
        self.count = count
        self.bits = bits
        self.codeWords = Hamming.words(bits)
        self.classes = labels == nil ? 0 : classes
        self.labelWords = labels == nil ? 0 : Hamming.words(classes)
        // Rows are packed in parallel chunks when there are many (Hamming.pack's per-bit loop
        // costs ~15 ms per 100k 64-bit codes on one core).
        let cw = codeWords, lw = labelWords
        let threads = count * (bits + classes) >= 1 << 20 ? 0 : 1
        var packed = [UInt64](repeating: 0, count: count * cw)
        var lab = [UInt64](repeating: 0, count: count * lw)
        packed.withUnsafeMutableBufferPointer { pc in
        lab.withUnsafeMutableBufferPointer { pl in
            ParallelFor.run(count: count, chunk: 4096, threads: threads) { _, rows in
                Hamming.pack(codes: codes + rows.lowerBound * bits, n: rows.count, bits: bits,
                             out: pc.baseAddress! + rows.lowerBound * cw)
                guard let labels, lw > 0 else { return }
                let out = pl.baseAddress!
                for i in rows {   // values are 0/1 (checked above): OR them in without a branch
                    let src = labels + i * classes
                    for c in 0..<classes {
                        out[i * lw + c / 64] |= UInt64(src[c]) << UInt64(c % 64)
                    }
                }
            }
        }}
        self.codes = packed
        self.labels = lab
    }

    /// Array convenience for Swift callers and tests: `codes.count / bits` rows; `labels`
    /// (nil for none) must hold the same number of rows of `classes` values.
    public init(codes: [Int8], bits: Int, labels: [UInt8]? = nil, classes: Int = 0,
                codesName: String = "codes", labelsName: String = "labels") throws {
        try require(bits >= 1, codesName, "codes with at least one bit, got \(bits)")
        try require(codes.count % bits == 0, codesName, "a multiple of \(bits) values, got \(codes.count)")
        let n = codes.count / bits
        if let labels {
            try require(classes >= 1 && labels.count == n * classes, labelsName,
                        "\(n) rows of \(classes) label values, got \(labels.count) values")
        }
        self = try codes.withUnsafeBufferPointer { c in
            let cp = c.baseAddress ?? UnsafePointer(bitPattern: 1)!
            if let labels {
                return try labels.withUnsafeBufferPointer { l in
                    try RetrievalSet(codes: cp, count: n, bits: bits,
                                     labels: l.baseAddress ?? UnsafePointer(bitPattern: 1)!, classes: classes,
                                     codesName: codesName, labelsName: labelsName)
                }
            }
            return try RetrievalSet(codes: cp, count: n, bits: bits, labels: nil, classes: 0,
                                    codesName: codesName, labelsName: labelsName)
        }
    }

    /// Throws unless every value is −1 or +1 (v + 1 ∈ {0, 2} ⇔ (v + 1) & 0xFD == 0; an
    /// OR-reduction that vectorises, then a second pass only to name the offending index).
    static func checkPlusMinusOne(_ p: UnsafePointer<Int8>, _ n: Int, _ name: String) throws {
        var acc: UInt8 = 0
        p.withMemoryRebound(to: UInt8.self, capacity: n) { u in
            for i in 0..<n { acc |= (u[i] &+ 1) & 0xFD }
        }
        if acc == 0 { return }
        for i in 0..<n where p[i] != 1 && p[i] != -1 {
            throw SAATError.invalidArgument(name, "codes of exactly -1 or +1, got \(p[i]) at flat index \(i)")
        }
    }

    /// Throws unless every value is 0 or 1.
    static func checkZeroOne(_ p: UnsafePointer<UInt8>, _ n: Int, _ name: String) throws {
        var acc: UInt8 = 0
        for i in 0..<n { acc |= p[i] & 0xFE }
        if acc == 0 { return }
        for i in 0..<n where p[i] > 1 {
            throw SAATError.invalidArgument(name, "multi-hot labels of 0 or 1, got \(p[i]) at flat index \(i)")
        }
    }

    /// Whether row `i` of `self` and row `j` of `other` share a class (yᵢᵀyⱼ > 0).
    @inlinable
    public func shareLabel(_ i: Int, _ other: RetrievalSet, _ j: Int) -> Bool {
        labels.withUnsafeBufferPointer { a in
            other.labels.withUnsafeBufferPointer { b in
                RetrievalSet.share(a.baseAddress! + i * labelWords, b.baseAddress! + j * labelWords, labelWords)
            }
        }
    }

    @inlinable @inline(__always)
    public static func share(_ a: UnsafePointer<UInt64>, _ b: UnsafePointer<UInt64>, _ w: Int) -> Bool {
        if w == 1 { return a[0] & b[0] != 0 }
        for t in 0..<w where a[t] & b[t] != 0 { return true }
        return false
    }
}

/// Per-thread scratch for ranking one query against a database of `nd` codes of `bits` bits,
/// keeping the first `k` ranks.
///
/// `rank(query:)` is a counting sort by distance (distances are 0…K): O(N + K) per query, never a
/// comparison sort. Pass 1 computes the N distances (`Hamming.rowDistances`) and their histogram;
/// the cut distance D is the smallest distance whose cumulative count reaches k; pass 2 compacts
/// the indices with distance ≤ D (branch-free, in index order); pass 3 scatters those into their
/// bucket's next slot, keeping every item with distance < D and the first (k − #{d < D}) items
/// with distance D. Within a bucket the order
/// is ascending index, which is the stable tie rule.
struct HammingRanker {
    let nd: Int
    let bits: Int
    let words: Int
    let k: Int
    var dist: [Int32]
    var hist: [Int]
    /// `ranked[0..<k]`: database indices of ranks 1…k after `rank(query:)`.
    var ranked: [Int32]
    /// Candidate indices (distance ≤ cut), in index order.
    var cand: [Int32]

    init(nd: Int, bits: Int, k: Int) {
        precondition(k >= 1 && k <= nd)
        self.nd = nd
        self.bits = bits
        self.words = Hamming.words(bits)
        self.k = k
        dist = [Int32](repeating: 0, count: nd)
        hist = [Int](repeating: 0, count: 4 * (bits + 1))
        ranked = [Int32](repeating: 0, count: k)
        cand = [Int32](repeating: 0, count: nd)
    }

    /// Ranks the database (`db`: nd × words packed codes) for the packed query `q`.
    mutating func rank(query q: UnsafePointer<UInt64>, database db: UnsafePointer<UInt64>) {
        let nd = self.nd, k = self.k, b1 = bits + 1
        dist.withUnsafeMutableBufferPointer { distBuf in
        hist.withUnsafeMutableBufferPointer { histBuf in
        ranked.withUnsafeMutableBufferPointer { rankedBuf in
        cand.withUnsafeMutableBufferPointer { candBuf in
                    let d = distBuf.baseAddress!, h = histBuf.baseAddress!, r = rankedBuf.baseAddress!
                    let c = candBuf.baseAddress!
                    Hamming.rowDistances(query: q, database: db, nd: nd, words: words, out: d)
                    // Histogram with 4 interleaved sub-histograms: consecutive equal distances
                    // would otherwise serialise on one counter's store→load latency.
                    h.update(repeating: 0, count: 4 * b1)
                    var j = 0
                    while j + 4 <= nd {
                        h[Int(d[j])] &+= 1
                        h[b1 + Int(d[j + 1])] &+= 1
                        h[2 * b1 + Int(d[j + 2])] &+= 1
                        h[3 * b1 + Int(d[j + 3])] &+= 1
                        j += 4
                    }
                    while j < nd { h[Int(d[j])] &+= 1; j += 1 }
                    for t in 0..<b1 { h[t] += h[b1 + t] + h[2 * b1 + t] + h[3 * b1 + t] }
                    // Cut distance and exclusive prefix offsets of buckets 0…cut.
                    var below = 0, cut = 0
                    while below + h[cut] < k { below += h[cut]; cut += 1 }
                    var run = 0
                    for t in 0...cut { let cnt = h[t]; h[t] = run; run += cnt }
                    // Branch-free compaction of the candidates (distance ≤ cut), in index order:
                    // the scatter below then touches only ~k items instead of branching on all N.
                    let cut32 = Int32(cut)
                    var n = 0
                    for i in 0..<nd {
                        c[n] = Int32(truncatingIfNeeded: i)
                        // (cut − d) >> 31 is −1 when d > cut, else 0 (arithmetic shift; no branch).
                        n &+= Int((cut32 &- d[i]) >> 31) &+ 1
                    }
                    var quota = k - below          // slots for distance == cut, first come first served
                    for t in 0..<n {
                        let i = c[t]
                        let di = d[Int(i)]
                        if di < cut32 {
                            let b = Int(di)
                            r[h[b]] = i
                            h[b] &+= 1
                        } else if quota > 0 {
                            r[h[cut]] = i
                            h[cut] &+= 1
                            quota -= 1
                        }
                    }
        }}}}
    }
}
