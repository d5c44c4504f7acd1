import Glibc

/// HashNet — "Deep Learning to Hash by Continuation" (Cao et al., ICCV 2017), with the constants
/// of the official code a recipe follows (`LossConstants`): SAAT's (github.com/xandery-geek/SAAT
/// @3743e69, model/hash_model/hashnet.py:20-27,29-67: a = 10/K, continuation) or CgAT's
/// (github.com/xunguangwang/CgAT @0d4a334, model/hashing_loss.py:93-133: a = 0.1, no
/// continuation — its `beta` is unused, the tanh line commented out, and the model has no scale).
///
/// With θ = a · u Uᵀ (B×N; u the batch outputs B×K, U the memory N×K), s_ij = [y_iᵀY_j > 0],
/// ℓ_ij = softplus(θ_ij) − s_ij θ_ij, S1 = #{s = 1}, S0 = #{s = 0}, S = S1 + S0 = B·N:
///
///     L = 1/S · Σ_ij w_ij ℓ_ij,   w_ij = S/S1 if s_ij = 1, S/S0 otherwise
///       = Σ_{s=1} ℓ / S1 + Σ_{s=0} ℓ / S0
///     ∂L/∂u = a · G U,   G_ij = w_ij (σ(θ_ij) − s_ij) / S          (U constant)
///
/// Continuation (SAAT hashnet.py forward; none in CgAT, where the scale stays 1): the network's
/// output is tanh(scale · g(x)); in training, every forward pass increments an iteration counter t
/// and, when t is a multiple of 200, sets scale = (1 + 0.005·t)^0.5; evaluation uses scale 1. `nextTrainingScale()` is that step (call it
/// once per training forward, before it); the counter and scale are in `saveState()`.
/// Deviation: Y is fixed at construction (the official code fills it batch by batch).
public final class HashNetLoss: MemoryBankLoss {
    public static let spec = LossSpec(
        schema: LossSpec.schema(
            "hashnet", "HashNet (Cao et al., ICCV 2017): class-balanced pairwise likelihood of a·u·Uᵀ (SAAT: a = 10/K, with tanh continuation; CgAT: a = 0.1)."),
        constants: [
            LossConstant("alpha", saat: .float(10), cgat: .float(0.1),
                         "scale a of the inner products, divided by K when alpha_over_bits (SAAT hashnet.py:20 `10.0 / self.bit`; CgAT hashing_loss.py:98 `alpha=0.1`)"),
            LossConstant("alpha_over_bits", saat: .bool(true), cgat: .bool(false), "whether a = alpha / K (SAAT) or a = alpha (CgAT)"),
            LossConstant("continuation", saat: .bool(true), cgat: .bool(false),
                         "tanh continuation in training (SAAT hashnet.py:22-27,58-67; CgAT has none)"),
        ]
    ) { bits, labels, s in
        HashNetLoss(bits: bits, trainLabels: labels,
                    alpha: s.bool("alpha_over_bits") ? s.float("alpha") / Float(bits) : s.float("alpha"),
                    continuation: s.bool("continuation"))
    }

    /// Scale a of the inner products (SAAT: 10/K; CgAT: 0.1).
    public let alpha: Float
    /// Whether the training scale follows the continuation (SAAT) or stays 1 (CgAT).
    public let continuation: Bool
    /// Continuation constants (SAAT): step 200 iterations, γ = 0.005, power 0.5, initial scale 1.
    public let stepSize = 200, gamma = 0.005, power = 0.5
    /// Scale of tanh in evaluation mode.
    public let evalScale: Float = 1
    /// Training forward passes counted so far.
    public private(set) var iteration = 0
    /// Current training scale of tanh(scale · g).
    public private(set) var scale: Float = 1

    /// The constants come from `spec` (`LossSpec.build`).
    init(bits: Int, trainLabels: Tensor, alpha: Float, continuation: Bool) {
        self.alpha = alpha
        self.continuation = continuation
        super.init(name: "hashnet", bits: bits, trainLabels: trainLabels)
    }

    /// Advances the continuation by one training forward pass and returns the scale to use in it
    /// (1, and nothing counted, without continuation).
    @discardableResult
    public override func nextTrainingScale() -> Float {
        guard continuation else { return 1 }
        iteration += 1
        if iteration % stepSize == 0 {
            scale = Float(pow(1 + gamma * Double(iteration), power))
        }
        return scale
    }

    public override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0]
        precondition(u.shape == [b, k] && memory.shape == [n, k])
        let s = LabelSet.similarity(labels, trainLabels)
        var g = LossMath.innerProducts(u: u, memory: memory, scale: alpha)
        var s1 = 0.0
        for v in s.data where v > 0 { s1 += 1 }
        let s0 = Double(s.count) - s1
        // Per-pair weight w/S: 1/S1 on positives, 1/S0 on negatives (a class that is empty has no term).
        let wPos = s1 > 0 ? 1 / s1 : 0, wNeg = s0 > 0 ? 1 / s0 : 0
        var sum = 0.0
        for i in 0..<g.count {
            let t = Double(g.data[i]), si = Double(s.data[i])
            let w = si > 0 ? wPos : wNeg
            sum += w * (LossMath.softplus(t) - si * t)
            g.data[i] = Float(w * (LossMath.sigmoid(t) - si))
        }
        var grad = Tensor(zeros: [b, k])
        LossMath.backProject(g, memory: memory, scale: alpha, into: &grad)
        return (sum, grad)
    }

    /// "iteration": [⌊t / 2²⁴⌋, t mod 2²⁴] (exact in float32), "scale": [scale].
    public override func saveState() -> [String: Tensor] {
        let hi = iteration >> 24, lo = iteration & 0xFF_FFFF
        return ["iteration": Tensor(shape: [2], data: [Float(hi), Float(lo)]),
                "scale": Tensor(shape: [1], data: [scale])]
    }

    public override func loadState(_ state: [String: Tensor]) throws {
        try requireStateKeys(state, ["iteration", "scale"], loss: name)
        let it = state["iteration"]!, sc = state["scale"]!
        try require(it.shape == [2] && it.data.allSatisfy { $0 >= 0 && $0 < 16_777_216 && $0 == $0.rounded() },
                    "state['iteration']", "2 non-negative integers < 2^24 (high, low), got \(it.data)")
        try require(sc.shape == [1] && sc.data[0].isFinite && sc.data[0] > 0,
                    "state['scale']", "one finite value > 0, got \(sc.data)")
        iteration = (Int(it.data[0]) << 24) + Int(it.data[1])
        scale = sc.data[0]
    }
}
