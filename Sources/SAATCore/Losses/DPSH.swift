/// DPSH — Deep Pairwise-Supervised Hashing (Li, Wang & Kang, IJCAI 2016), with the constants
/// of the SAAT official code (github.com/xandery-geek/SAAT @3743e69, model/hash_model/dpsh.py:27-39).
///
/// With θ = ½·u Uᵀ (B×N; u the batch outputs B×K, U the memory N×K) and s_ij = [y_iᵀY_j > 0]:
///
///     L = 1/(B·N) · Σ_ij [softplus(θ_ij) − s_ij·θ_ij]  +  η/(B·N) · Σ_ik (sign(u_ik) − u_ik)²,   η = 50
///
/// (both sums divided by B·N, exactly as SAAT; softplus as log1p(e^{−|θ|}) + max(θ, 0)).
/// Gradient, U and sign(u) constant (sign has zero derivative almost everywhere):
///
///     ∂L/∂u = ½ · G U  +  2η/(B·N) · (u − sign u),   G_ij = (σ(θ_ij) − s_ij)/(B·N)
///
/// CgAT's variant (hashing_loss.py:62-90: means, η = 0.001 on a B·K mean) is not used: SAAT's
/// constants are the reference where the two differ. Deviation: Y is fixed at construction
/// (the official code fills it batch by batch; identical once every item has been seen).
public final class DPSHLoss: MemoryBankLoss {
    public static let spec = LossSpec(schema: LossSpec.schema(
        "dpsh", "DPSH (Li et al., IJCAI 2016): pairwise likelihood of ½·u·Uᵀ plus η = 50 times the quantisation error, SAAT's constants.")
    ) { bits, labels, _ in DPSHLoss(bits: bits, trainLabels: labels) }

    /// Weight η of the quantisation term (SAAT `yita`).
    public let eta: Double = 50

    public init(bits: Int, trainLabels: Tensor) { super.init(name: "dpsh", bits: bits, trainLabels: trainLabels) }

    public override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0]
        precondition(u.shape == [b, k] && memory.shape == [n, k])
        let inv = 1.0 / Double(b * n)
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
