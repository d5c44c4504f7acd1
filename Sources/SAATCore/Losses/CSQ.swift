import Glibc

/// CSQ — Central Similarity Quantization (Yuan et al., CVPR 2020), with the quantisation weight λ
/// of the official code a recipe follows (`LossConstants`: SAAT github.com/xandery-geek/SAAT
/// @3743e69, model/hash_model/csq.py:19-59, λ = 0.05; CgAT github.com/xunguangwang/CgAT @0d4a334,
/// model/hashing_loss.py:309-376, λ = 1e-4) and CgAT's extra-centre fallback in both.
///
/// Hash centres T (C×K): the first C rows of [H_K; −H_K], H_K the Sylvester–Hadamard matrix
/// (H[i][j] = (−1)^popcount(i & j), as scipy.linalg.hadamard), so K must be a power of two.
/// When 2K < C (SAAT asserts instead; e.g. COCO at K ≤ 32), rows 2K..<C are CgAT's random balanced
/// codes (K/2 entries −1 at random positions), redrawn up to 20 times until the minimum pairwise
/// Hamming distance of all centres is > K/4 and the mean ≥ K/2 (else the 20th draw is kept).
/// A batch item's centre is c = sign⁺(yᵀT) with the zero entries of yᵀT replaced by a fixed random
/// ±1 vector r (sign⁺(x) = +1 if x > 0 else −1; one-hot labels give their class's row). r and the
/// extra centres come from `SeededRNG(seed)` (r first).
///
/// With q_ik = (1 + c_ik u_ik)/2 (= p for c = +1, 1 − p for c = −1, p = (u + 1)/2):
///
///     L = 1/(B·K) Σ_ik −max(log q_ik, −100)  +  λ/(B·K) Σ_ik (|u_ik| − 1)²
///     ∂L/∂u_ik = [log q_ik > −100]·(−c_ik/(2 q_ik))/(B·K) + 2λ(|u_ik| − 1)·sign(u_ik)/(B·K)
///
/// (the first term is torch.nn.BCELoss with its −100 log clamp). u must lie in [−1, 1] (tanh
/// outputs); `validateBatch` checks it.
public final class CSQLoss: MemoryBankLoss {
    public static let spec = LossSpec(
        schema: LossSpec.schema(
            "csq", "CSQ (Yuan et al., CVPR 2020): binary cross-entropy towards per-class Hadamard hash centres plus λ times the quantisation error (SAAT: λ = 0.05; CgAT: λ = 1e-4).",
            parameters: [.int("seed", 0, 0...Int.max, "seed of the random extra centres and of the tie-breaking centre")]),
        constants: [LossConstant("lambda", saat: .float(0.05), cgat: .float(1e-4),
                                 "weight λ of the quantisation term (SAAT csq.py:19 `p_lambda`; CgAT hashing_loss.py:314 `my_lambda`)")]
    ) { bits, labels, s in
        try require(bits & (bits - 1) == 0, "bits",
                    "a power of two number of bits for csq (Sylvester-Hadamard hash centres), got \(bits)")
        return CSQLoss(bits: bits, trainLabels: labels, seed: UInt64(s.int("seed")), lambda: s.double("lambda"))
    }

    /// Weight λ of the quantisation term.
    public let lambda: Double
    /// Hash centres T (C×K, ±1).
    public private(set) var centers: Tensor
    /// Replacement r (K, ±1) for the zero entries of yᵀT.
    public private(set) var randomCenter: Tensor

    /// `bits` must be a power of two; λ comes from `spec` (`LossSpec.build`).
    init(bits: Int, trainLabels: Tensor, seed: UInt64, lambda: Double) {
        self.lambda = lambda
        precondition(bits & (bits - 1) == 0, "CSQLoss: bits must be a power of two")
        var rng = SeededRNG(seed: seed)
        randomCenter = Tensor(shape: [bits], data: (0..<bits).map { _ in rng.next() & 1 == 1 ? 1 : -1 })
        centers = CSQLoss.hashCenters(classes: trainLabels.shape[1], bits: bits, rng: &rng)
        super.init(name: "csq", bits: bits, trainLabels: trainLabels)
    }

    /// Sylvester–Hadamard matrix H_K (K×K, ±1, rows mutually orthogonal), K a power of two.
    public static func hadamard(_ k: Int) -> Tensor {
        precondition(k >= 1 && k & (k - 1) == 0)
        var h = Tensor(zeros: [k, k])
        for i in 0..<k {
            for j in 0..<k { h.data[i * k + j] = (i & j).nonzeroBitCount & 1 == 0 ? 1 : -1 }
        }
        return h
    }

    /// The C centres described in the type's doc.
    public static func hashCenters(classes c: Int, bits k: Int, rng: inout SeededRNG) -> Tensor {
        let h = hadamard(k)
        var t = Tensor(zeros: [c, k])
        for row in 0..<Swift.min(c, 2 * k) {
            let src = row % k, sgn: Float = row < k ? 1 : -1
            for j in 0..<k { t.data[row * k + j] = sgn * h.data[src * k + j] }
        }
        guard c > 2 * k else { return t }
        for _ in 0..<20 {
            for row in (2 * k)..<c {
                for j in 0..<k { t.data[row * k + j] = 1 }
                // K/2 distinct random positions set to −1 (partial Fisher–Yates).
                var pos = Array(0..<k)
                for j in 0..<(k / 2) {
                    pos.swapAt(j, j + rng.below(k - j))
                    t.data[row * k + pos[j]] = -1
                }
            }
            var minD = Int.max, sumD = 0, pairs = 0
            for i in 0..<c {
                for j in (i + 1)..<Swift.max(i + 1, c) {
                    var d = 0
                    for x in 0..<k where t.data[i * k + x] != t.data[j * k + x] { d += 1 }
                    minD = Swift.min(minD, d); sumD += d; pairs += 1
                }
            }
            if Double(minD) > Double(k) / 4 && Double(sumD) / Double(pairs) >= Double(k) / 2 { break }
        }
        return t
    }

    /// Centres of a batch: sign⁺(yᵀT) with zeros replaced by r (B×K).
    public func batchCenters(labels: Tensor) -> Tensor {
        let b = labels.shape[0], k = bits
        var out = Tensor.matmul(labels, centers)
        for i in 0..<(b * k) {
            // Sums of ±1 over at most C labels are exact integers in float32.
            let v = out.data[i] == 0 ? randomCenter.data[i % k] : out.data[i]
            out.data[i] = v > 0 ? 1 : -1
        }
        return out
    }

    public override func validateBatch(u: Tensor, labels: Tensor, indices: [Int]) throws {
        try validateHashingBatch(u: u, labels: labels, indices: indices, bits: bits, trainLabels: trainLabels)
        if let i = u.data.firstIndex(where: { Swift.abs($0) > 1 }) {
            throw SAATError.invalidArgument("u", "values in [-1, 1] for csq (BCE on (u+1)/2), got \(u.data[i]) at flat index \(i)")
        }
    }

    public override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits
        precondition(u.shape == [b, k])
        let cen = batchCenters(labels: labels)
        let inv = 1.0 / Double(b * k)
        var bce = 0.0, quant = 0.0
        var grad = Tensor(zeros: [b, k])
        for i in 0..<(b * k) {
            let x = Double(u.data[i]), c = Double(cen.data[i])
            let q = (1 + c * x) / 2
            let lq = q > 0 ? log(q) : -Double.infinity
            var gi = 0.0
            if lq > -100 {
                bce -= lq
                gi = -c / (2 * q)
            } else {
                bce += 100
            }
            let a = Swift.abs(x) - 1
            quant += a * a
            gi += 2 * lambda * a * Double(LossMath.sign(Float(x)))
            grad.data[i] = Float(gi * inv)
        }
        return (bce * inv + lambda * quant * inv, grad)
    }

    /// "centers": T (C×K), "random_center": r (K) — so a checkpoint does not depend on the seed.
    public override func saveState() -> [String: Tensor] { ["centers": centers, "random_center": randomCenter] }

    public override func loadState(_ state: [String: Tensor]) throws {
        try requireStateKeys(state, ["centers", "random_center"], loss: name)
        let t = state["centers"]!, r = state["random_center"]!
        try require(t.shape == centers.shape && t.data.allSatisfy { $0 == 1 || $0 == -1 },
                    "state['centers']", "±1 values of shape \(centers.shape), got shape \(t.shape)")
        try require(r.shape == [bits] && r.data.allSatisfy { $0 == 1 || $0 == -1 },
                    "state['random_center']", "±1 values of shape [\(bits)], got shape \(r.shape)")
        centers = t
        randomCenter = r
    }
}
