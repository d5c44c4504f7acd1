/// DHTA, "Targeted Attack for Deep Hashing based Retrieval" (Bai et al., ECCV 2020; official code
/// jiawangbai/DHTA-master), in SAAT's evaluation setting (`dhta.py`, `attack.py`).
///
/// Anchor code by component voting: a = sign(Σ_{m=1}^{n_t} b_m) over n_t database codes whose
/// label vector equals the target label, drawn uniformly with replacement (n_t = 9 for DHTA,
/// 1 for P2P). Then PGD without random start minimising −mean(F(x') ⊙ a), step 1/255, 2000
/// iterations, α schedule, ε = 0.032. sign(0) = 0 (possible only for even n_t).
public enum DHTAAttack {
    /// Anchor codes (B×K, {−1,0,+1}) for target labels; throws naming `labels` when no
    /// database item carries exactly a target label vector. Row i draws its items from the stream
    /// `SeededRNG(seed: seed, stream: firstIndex + i)`.
    public static func anchors(targets: Tensor, dbCodes: Tensor, dbLabels: Tensor, nt: Int,
                               seed: UInt64, firstIndex: Int = 0) throws -> Tensor {
        try require(nt >= 1, "n_t", "an int ≥ 1, got \(nt)")
        let b = targets.batch, c = targets.shape[1], k = dbCodes.shape[1], n = dbCodes.batch
        var out = Tensor(zeros: [b, k])
        var byLabel: [[Float]: [Int]] = [:]
        for j in 0..<n { byLabel[Array(dbLabels.data[(j * c)..<((j + 1) * c)]), default: []].append(j) }
        for i in 0..<b {
            let t = Array(targets.data[(i * c)..<((i + 1) * c)])
            guard let pool = byLabel[t], !pool.isEmpty else {
                throw SAATError.invalidArgument("labels", "target label vectors that occur in db_labels (row \(i) matches no database item; use select_target_labels)")
            }
            var sum = [Float](repeating: 0, count: k)
            var rng = SeededRNG(seed: seed, stream: UInt64(firstIndex + i))
            for _ in 0..<nt {
                let j = pool[rng.below(pool.count)]
                for q in 0..<k { sum[q] += dbCodes.data[j * k + q] }
            }
            for q in 0..<k { out.data[i * k + q] = sum[q] > 0 ? 1 : (sum[q] < 0 ? -1 : 0) }
        }
        return out
    }

    public static let schema = Schema(
        .attack, "dhta", python: "DHTA",
        summary: "DHTA (Bai et al., ECCV 2020): PGD towards the anchor code voted by n_t database codes of the target label.",
        inputs: [AttackParameters.dbCodes, AttackParameters.dbLabels],
        parameters: [.int("n_t", 9, 1...(1 << 20), "number of database items whose codes vote the anchor code"),
                     AttackParameters.eps(0.032), AttackParameters.step(1.0 / 255), AttackParameters.steps(2000),
                     AttackParameters.seed])
    public static let spec = AttackSpec(schema: schema) { bits, inputs, s, _ in try prepare(schema, bits, inputs, s, anchorCount: s.int("n_t")) }

    /// The prepared anchor-code attack shared by DHTA and P2P (`P2PAttack`, n_t = 1).
    static func prepare(_ schema: Schema, _ bits: Int, _ inputs: AttackInputs, _ s: Settings,
                        anchorCount nt: Int) throws -> PreparedAttack {
        let (dc, dl) = try inputs.database(bits: bits)
        return PreparedAttack(schema: schema, settings: s, bits: bits, targeted: true, labelClasses: dl.shape[1], guides: true,
                              config: AttackParameters.signConfig(s, randomStart: false, alphaSchedule: true)) { _, _, _, labels, first, _ in
            let a = try anchors(targets: labels!, dbCodes: dc, dbLabels: dl, nt: nt, seed: UInt64(s.int("seed")) &+ 0xD47A,
                                firstIndex: first)
            return (CodeProductObjective(codes: a, .towards), a)
        }
    }
}
