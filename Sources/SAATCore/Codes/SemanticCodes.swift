/// Closed-form semantic codes that guide SAAT's and CgAT's attacks and adversarial training.
///
/// Both are b = sign(Σ_{j∈P} w⁺_j b_j − Σ_{j∈N} w⁻_j b_j) over the training codes b_j ∈ {±1}^K,
/// where P are the training items sharing a label with y and N those sharing none; they differ in
/// the positive weights. The sum is computed for a whole batch as a (B×N) weight matrix times the
/// (N×K) code matrix with one sgemm. sign(0) = 0, mirroring `torch.sign` in the official code: a
/// bit whose weighted sum is exactly 0 (e.g. balanced votes) is 0 and does not pull an attack.
/// An empty positive set gives w⁺ = 0 and an empty negative set w⁻ = 0 (then b is the sign of the
/// remaining sum; all zero when both are empty).
public enum SemanticCodes {
    public enum Kind: String, Sendable {
        /// SAAT's DMFL mainstay code: w⁺_j = cos(y, L_j) / Σ_{i∈P} cos(y, L_i), w⁻_j = 1/|N|
        /// (SAAT `adv_attack.py`, "update mainstay code").
        case mainstay
        /// CgAT's CHCM center code: w⁺_j = 1/|P|, w⁻_j = 1/|N| (CgAT `central_adv_train.py`).
        case center
    }

    /// Codes for `labels` (B×C, multi-hot) from training codes (N×K, ±1) and labels (N×C).
    /// Returns B×K floats in {−1, 0, +1}.
    public static func compute(_ kind: Kind, labels: Tensor, trainCodes: Tensor, trainLabels: Tensor) throws -> Tensor {
        try require(labels.rank == 2, "labels", "a 2-d (B, C) label matrix, got shape \(labels.shape)")
        try require(trainCodes.rank == 2 && trainCodes.shape[1] >= 1, "train_codes", "a 2-d (N, K) code matrix, got shape \(trainCodes.shape)")
        try require(trainLabels.rank == 2 && trainLabels.batch == trainCodes.batch, "train_labels",
                    "one label row per training code (\(trainCodes.batch)), got shape \(trainLabels.shape)")
        try require(trainLabels.shape[1] == labels.shape[1], "labels",
                    "\(trainLabels.shape[1]) label columns like train_labels, got \(labels.shape[1])")
        let b = labels.batch, n = trainCodes.batch, k = trainCodes.shape[1], c = labels.shape[1]
        if b == 0 { return Tensor(zeros: [0, k]) }
        // inter[i, j] = y_iᵀ L_j
        var w = LabelSet.overlaps(labels, trainLabels)
        var trainNorms = [Float](repeating: 0, count: n)
        if kind == .mainstay {
            trainLabels.data.withUnsafeBufferPointer { l in
                for j in 0..<n {
                    var s: Float = 0
                    for t in 0..<c { s += l[j * c + t] * l[j * c + t] }
                    trainNorms[j] = s.squareRoot()
                }
            }
        }
        // Split inter into positive weights (cos or 1) and a 0/1 negative mask, row by row.
        var neg = Tensor(zeros: [b, n])
        var posSum = [Double](repeating: 0, count: b), negCount = [Double](repeating: 0, count: b)
        w.data.withUnsafeMutableBufferPointer { wp in
            neg.data.withUnsafeMutableBufferPointer { np in
                labels.data.withUnsafeBufferPointer { y in
                    for i in 0..<b {
                        let row = wp.baseAddress! + i * n, nrow = np.baseAddress! + i * n
                        var yn: Float = 0
                        for t in 0..<c { yn += y[i * c + t] * y[i * c + t] }
                        yn = yn.squareRoot()
                        var ps: Double = 0, nc: Double = 0
                        for j in 0..<n {
                            if row[j] > 0 {
                                let v: Float = kind == .mainstay ? row[j] / (yn * trainNorms[j] + 1e-8) : 1
                                row[j] = v
                                ps += Double(v)
                            } else {
                                row[j] = 0
                                nrow[j] = 1
                                nc += 1
                            }
                        }
                        posSum[i] = ps
                        negCount[i] = nc
                    }
                }
            }
        }
        // SP = Wp·B (weighted positive sums), SN = Wn·B (integer sums of negative codes, exact in
        // float32 below 2^24 items). `RowProducts` sums each value over the training items in
        // index order, so a row's code does not depend on the other rows computed with it.
        func product(_ a: Tensor) -> Tensor {
            var out = Tensor(zeros: [b, k])
            a.data.withUnsafeBufferPointer { ap in
                trainCodes.data.withUnsafeBufferPointer { cp in
                    out.data.withUnsafeMutableBufferPointer { op in
                        RowProducts.combinations(d: ap.baseAddress!, rows: b, m: n, w: cp.baseAddress!, ldw: k,
                                                 columns: 0..<k, dx: op.baseAddress!, ldx: k)
                    }
                }
            }
            return out
        }
        let sp = product(w), sn = product(neg)
        // b = sign(SP/Σw⁺ − SN/|N|) = sign(SP·|N| − SN·Σw⁺) (both factors positive): with integer
        // sums (center codes, or mainstay codes of single-label data) this is exact, so a true tie
        // gives exactly 0 like the official code's sign(n⁻·Σ_P b − n⁺·Σ_N b).
        var out = Tensor(zeros: [b, k])
        out.data.withUnsafeMutableBufferPointer { o in
            sp.data.withUnsafeBufferPointer { spp in
                sn.data.withUnsafeBufferPointer { snp in
                    for i in 0..<b {
                        let hasPos = posSum[i] > 0, hasNeg = negCount[i] > 0
                        for t in 0..<k {
                            let pv = Double(spp[i * k + t]), nv = Double(snp[i * k + t])
                            let v: Double
                            switch (hasPos, hasNeg) {
                            case (true, true): v = pv * negCount[i] - nv * posSum[i]
                            case (true, false): v = pv
                            case (false, true): v = -nv
                            case (false, false): v = 0
                            }
                            o[i * k + t] = v > 0 ? 1 : (v < 0 ? -1 : 0)
                        }
                    }
                }
            }
        }
        return out
    }

    /// `compute` after checking the values too (±1 codes, 0/1 labels, at least one training code),
    /// for callers outside the training loops (`saat.codes`); errors name the Python arguments.
    public static func checked(_ kind: Kind, labels: Tensor, trainCodes: Tensor, trainLabels: Tensor) throws -> Tensor {
        try require(trainCodes.rank == 2 && trainCodes.batch >= 1, "train_codes",
                    "a 2-d (N, K) code matrix with at least one code, got shape \(trainCodes.shape)")
        try LabelSet.requireSigns(trainCodes, "train_codes")
        try require(trainLabels.rank == 2 && trainLabels.batch == trainCodes.batch && trainLabels.shape[1] >= 1,
                    "train_labels", "one label row per code: \(trainCodes.batch) rows of C >= 1 classes, got shape \(trainLabels.shape)")
        try LabelSet.requireBinary(trainLabels, "train_labels")
        try require(labels.rank == 2 && labels.shape[1] == trainLabels.shape[1], "labels",
                    "\(trainLabels.shape[1]) label columns like train_labels, got shape \(labels.shape)")
        try LabelSet.requireBinary(labels, "labels")
        return try compute(kind, labels: labels, trainCodes: trainCodes, trainLabels: trainLabels)
    }
}
