/// DHTA, "Targeted Attack for Deep Hashing based Retrieval" (Bai et al., ECCV 2020; official code
/// jiawangbai/DHTA-master), in SAAT's evaluation setting (`dhta.py`, `attack.py`).
///
/// Anchor code by component voting: a = sign(Σ_{m=1}^{n_t} b_m) over n_t database codes whose
/// label vector equals the target label, drawn uniformly with replacement (n_t = 9 for DHTA,
/// 1 for P2P). Then PGD without random start minimising −mean(F(x') ⊙ a), step 1/255, 2000
/// iterations, α schedule, ε = 0.032. sign(0) = 0 (possible only for even n_t).
public enum DHTAAttack {
    /// Anchor codes (B×K, {−1,0,+1}) for target labels; throws naming `target_labels` when no
    /// database item carries exactly a target label vector.
    public static func anchors(targets: Tensor, dbCodes: Tensor, dbLabels: Tensor, nt: Int,
                               rng: inout SeededRNG) throws -> Tensor {
        try require(nt >= 1, "n_t", "an int ≥ 1, got \(nt)")
        let b = targets.batch, c = targets.shape[1], k = dbCodes.shape[1], n = dbCodes.batch
        var out = Tensor(zeros: [b, k])
        var byLabel: [[Float]: [Int]] = [:]
        for j in 0..<n { byLabel[Array(dbLabels.data[(j * c)..<((j + 1) * c)]), default: []].append(j) }
        for i in 0..<b {
            let t = Array(targets.data[(i * c)..<((i + 1) * c)])
            guard let pool = byLabel[t], !pool.isEmpty else {
                throw SAATError.invalidArgument("target_labels", "label vectors that occur in db_labels (row \(i) matches no database item; use select_target_labels)")
            }
            var sum = [Float](repeating: 0, count: k)
            for _ in 0..<nt {
                let j = pool[rng.below(pool.count)]
                for q in 0..<k { sum[q] += dbCodes.data[j * k + q] }
            }
            for q in 0..<k { out.data[i * k + q] = sum[q] > 0 ? 1 : (sum[q] < 0 ? -1 : 0) }
        }
        return out
    }

    public static func run(model: HashingModel, images: UnsafePointer<Float>, n: Int, targets: Tensor,
                           dbCodes: Tensor, dbLabels: Tensor, nt: Int, config: AttackConfig,
                           out: UnsafeMutablePointer<Float>, shouldStop: () -> Bool = { false }) throws -> Tensor {
        try config.validate()
        try require(targets.batch == n, "labels", "one target label row per image (\(n)), got \(targets.batch)")
        try require(dbCodes.shape[1] == model.bits, "db_codes", "\(model.bits)-bit codes, got \(dbCodes.shape[1])")
        var rng = SeededRNG(seed: config.seed &+ 0xD47A)
        let a = try anchors(targets: targets, dbCodes: dbCodes, dbLabels: dbLabels, nt: nt, rng: &rng)
        try AttackEngine.run(model: model, images: images, n: n, objective: CodeAwayObjective(codes: a, towards: true),
                             config: config, out: out, shouldStop: shouldStop)
        return a
    }
}
