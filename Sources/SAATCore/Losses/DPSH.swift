/// DPSH — Deep Pairwise-Supervised Hashing (Li, Wang & Kang, IJCAI 2016), with the constants of
/// the official code a recipe follows (`LossConstants`): SAAT's (github.com/xandery-geek/SAAT
/// @3743e69, model/hash_model/dpsh.py:17,27-39) or CgAT's (github.com/xunguangwang/CgAT @0d4a334,
/// model/hashing_loss.py:62-90).
///
/// With θ = ½·u Uᵀ (B×N; u the batch outputs B×K, U the memory N×K) and s_ij = [y_iᵀY_j > 0]:
///
///     L = 1/(B·N) · Σ_ij [softplus(θ_ij) − s_ij·θ_ij]  +  η/D · Σ_ik (sign(u_ik) − u_ik)²
///
/// SAAT: η = 50, D = B·N (both sums divided by B·N); CgAT: η = 0.001, D = B·K (each term a
/// `.mean()`: the likelihood over the B×N pairs, the quantisation over the B×K outputs).
/// softplus as log1p(e^{−|θ|}) + max(θ, 0). Gradient, U and sign(u) constant (sign has zero
/// derivative almost everywhere):
///
///     ∂L/∂u = ½ · G U  +  2η/D · (u − sign u),   G_ij = (σ(θ_ij) − s_ij)/(B·N)
///
/// Deviation: Y is fixed at construction (the official codes fill it batch by batch; identical
/// once every item has been seen).
public final class DPSHLoss: MemoryBankLoss {
    public static let spec = LossSpec(
        schema: LossSpec.schema(
            "dpsh", "DPSH (Li et al., IJCAI 2016): pairwise likelihood of ½·u·Uᵀ plus η times the quantisation error (SAAT: η = 50; CgAT: η = 0.001)."),
        constants: [
            LossConstant("eta", saat: .float(50), cgat: .float(0.001),
                         "weight η of the quantisation term (SAAT dpsh.py:17 `yita`; CgAT hashing_loss.py:67 `eta`)"),
            LossConstant("quantisation_divisor", saat: .string("B*N"), cgat: .string("B*K"),
                         "what the quantisation sum is divided by (SAAT dpsh.py:37 batch × training items; CgAT hashing_loss.py:88 `.mean()` over the batch outputs)"),
        ]
    ) { bits, labels, s in
        DPSHLoss(bits: bits, trainLabels: labels, eta: s.double("eta"), quantisationOverBits: s.string("quantisation_divisor") == "B*K")
    }

    /// Weight η of the quantisation term.
    public let eta: Double
    /// Whether the quantisation sum is divided by B·K (CgAT) rather than B·N (SAAT).
    public let quantisationOverBits: Bool

    /// The constants come from `spec` (`LossSpec.build`).
    init(bits: Int, trainLabels: Tensor, eta: Double, quantisationOverBits: Bool) {
        self.eta = eta
        self.quantisationOverBits = quantisationOverBits
        super.init(name: "dpsh", bits: bits, trainLabels: trainLabels)
    }

    /// D, the divisor of the quantisation sum, for a batch of `b` rows.
    func quantisationDivisor(batch b: Int) -> Int { b * (quantisationOverBits ? bits : trainLabels.shape[0]) }

    public override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0]
        precondition(u.shape == [b, k] && memory.shape == [n, k])
        let inv = 1.0 / Double(quantisationDivisor(batch: b))
        var grad = Tensor(zeros: [b, k])
        var quant = 0.0
        for i in 0..<(b * k) {
            let d = u.data[i] - LossMath.sign(u.data[i])
            quant += Double(d) * Double(d)
            grad.data[i] = Float(2 * eta * inv) * d
        }
        let like = LossMath.pairLikelihood(u: u, labels: labels, trainLabels: trainLabels, memory: memory, into: &grad)
        return (like + eta * quant * inv, grad)
    }
}
