import CPython
import SAATCore

// saat._core entry points for SAATCore/Metrics (saat.metrics in Python).
//
// Inputs: codes (n, K) int8 of exactly ±1, multi-hot labels (n, C) uint8 of 0/1, all C-contiguous.
// Outputs go into caller-allocated arrays (float64 or int64). Packing and ranking run with the
// GIL released; the argument names in errors are those of the Python API.

/// A writable C-contiguous float64 buffer of exactly `shape` (metric outputs are float64 so
/// per-query APs and averaged curves reach Python without rounding).
private func withF64Out<R>(_ obj: PyObj, _ name: String, shape: [Int],
                           _ body: (UnsafeMutablePointer<Double>) throws -> R) throws -> R {
    try withArray(obj, name, .float64, as: Double.self, shape: shape.map { Optional($0) }, writable: true) { try body($0.ptr) }
}

/// The packed query and database sides of a metric call. Code widths must match (named
/// `db_codes`); with `labelled`, label rows must match their code rows and label widths must
/// match (named `query_labels` / `db_labels`). Packing runs with the GIL released and throws
/// ValueError naming the argument for codes other than ±1 or labels other than 0/1.
private func packedSets(_ a: Args, labelled: Bool) throws -> (RetrievalSet, RetrievalSet) {
    try withArray(a.required("query_codes"), "query_codes", .int8, as: Int8.self, shape: [nil, nil]) { qc in
        let nq = qc.dim(0), bits = qc.dim(1)
        try require(bits >= 1, "query_codes", "codes with at least one bit, got shape \(shapeString(qc.shape))")
        return try withArray(a.required("db_codes"), "db_codes", .int8, as: Int8.self, shape: [nil, bits]) { dc in
            let nd = dc.dim(0)
            if !labelled {
                return try withoutGIL {
                    (try RetrievalSet(codes: qc.constPtr, count: nq, bits: bits, labels: nil, classes: 0,
                                      codesName: "query_codes", labelsName: "query_labels"),
                     try RetrievalSet(codes: dc.constPtr, count: nd, bits: bits, labels: nil, classes: 0,
                                      codesName: "db_codes", labelsName: "db_labels"))
                }
            }
            return try withArray(a.required("query_labels"), "query_labels", .uint8, as: UInt8.self, shape: [nq, nil]) { ql in
                let classes = ql.dim(1)
                try require(classes >= 1, "query_labels", "labels with at least one class, got shape \(shapeString(ql.shape))")
                return try withArray(a.required("db_labels"), "db_labels", .uint8, as: UInt8.self, shape: [nd, classes]) { dl in
                    try withoutGIL {
                        (try RetrievalSet(codes: qc.constPtr, count: nq, bits: bits, labels: ql.constPtr, classes: classes,
                                          codesName: "query_codes", labelsName: "query_labels"),
                         try RetrievalSet(codes: dc.constPtr, count: nd, bits: bits, labels: dl.constPtr, classes: classes,
                                          codesName: "db_codes", labelsName: "db_labels"))
                    }
                }
            }
        }
    }
}

private func threadsArg(_ a: Args) throws -> Int {
    let t = try a.int("threads", 0)
    try require(t >= 0 && t <= 256, "threads", "0 (all CPUs) or a thread count in 1...256, got \(t)")
    return t
}

/// map_at_k(query_codes, db_codes, query_labels, db_labels, k, ap_out=None, threads=0) -> float:
/// MAP over the top k (k > N means N); per-query APs into ap_out (float64 (nq,)) when given.
let mapAtKFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("map_at_k", args, nargs, kw,
                         names: ["query_codes", "db_codes", "query_labels", "db_labels", "k", "ap_out", "threads"], required: 5)
        let k = try a.int("k")
        try require(k >= 1, "k", "k >= 1, got \(k)")
        let threads = try threadsArg(a)
        let (q, d) = try packedSets(a, labelled: true)
        let run = { (ap: UnsafeMutablePointer<Double>?) throws -> Double in
            try withoutGIL { try Metrics.mapAtK(query: q, database: d, k: k, apOut: ap, threads: threads) }
        }
        let m: Double
        if let o = a.obj("ap_out") {
            m = try withF64Out(o, "ap_out", shape: [q.count]) { try run($0) }
        } else {
            m = try run(nil)
        }
        return pyFloat(m)
    }
}

/// pr_curve(query_codes, db_codes, query_labels, db_labels, precision_out, recall_out, threads=0):
/// SAAT cal_pr precision at recall 0.01…1.00 into two float64 (100,) arrays.
let prCurveFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("pr_curve", args, nargs, kw,
                         names: ["query_codes", "db_codes", "query_labels", "db_labels", "precision_out", "recall_out", "threads"],
                         required: 6)
        let threads = try threadsArg(a)
        let L = Metrics.prLevels
        try withF64Out(a.required("precision_out"), "precision_out", shape: [L]) { po in
            try withF64Out(a.required("recall_out"), "recall_out", shape: [L]) { ro in
                let (q, d) = try packedSets(a, labelled: true)
                let (p, r) = try withoutGIL { try Metrics.prCurve(query: q, database: d, threads: threads) }
                po.update(from: p, count: L)
                ro.update(from: r, count: L)
            }
        }
        return saat_none()
    }
}

/// precision_at_n(query_codes, db_codes, query_labels, db_labels, n, out, threads=0):
/// mean precision within the first n[t] results (n int64 (T,), every value ≥ 1; n > N means N)
/// into out float64 (T,).
let precisionAtNFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("precision_at_n", args, nargs, kw,
                         names: ["query_codes", "db_codes", "query_labels", "db_labels", "n", "out", "threads"], required: 6)
        let threads = try threadsArg(a)
        let ns: [Int] = try withArray(a.required("n"), "n", .int64, as: Int64.self, shape: [nil]) { v in
            (0..<v.count).map { Int(v.ptr[$0]) }
        }
        try withF64Out(a.required("out"), "out", shape: [ns.count]) { o in
            let (q, d) = try packedSets(a, labelled: true)
            let p = try withoutGIL { try Metrics.precisionAtN(query: q, database: d, ns: ns, threads: threads) }
            o.update(from: p, count: ns.count)
        }
        return saat_none()
    }
}

/// hamming_rank(query_codes, db_codes, k, out, threads=0): the first min(k, N) database indices
/// of each query's ranking (ascending distance, ties by index) into out int64 (nq, min(k, N)).
let hammingRankFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("hamming_rank", args, nargs, kw,
                         names: ["query_codes", "db_codes", "k", "out", "threads"], required: 4)
        let k = try a.int("k")
        try require(k >= 1, "k", "k >= 1, got \(k)")
        let threads = try threadsArg(a)
        let (q, d) = try packedSets(a, labelled: false)
        try require(d.count >= 1, "db_codes", "at least one database code, got 0")
        let kk = min(k, d.count)
        try withArray(a.required("out"), "out", .int64, as: Int64.self, shape: [q.count, kk], writable: true) { o in
            try withoutGIL { try Metrics.hammingRank(query: q, database: d, k: kk, out: o.ptr, threads: threads) }
        }
        return saat_none()
    }
}

let metricMethods: [PyMethodDef] = [
    method("map_at_k", mapAtKFn,
           "map_at_k(query_codes, db_codes, query_labels, db_labels, k, ap_out=None, threads=0) -> float"),
    method("pr_curve", prCurveFn,
           "pr_curve(query_codes, db_codes, query_labels, db_labels, precision_out, recall_out, threads=0)"),
    method("precision_at_n", precisionAtNFn,
           "precision_at_n(query_codes, db_codes, query_labels, db_labels, n, out, threads=0)"),
    method("hamming_rank", hammingRankFn, "hamming_rank(query_codes, db_codes, k, out, threads=0)"),
]
