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
public final class DPSHLoss: HashingLossValue {
    public let name = "dpsh"
    public let bits: Int
    public let trainLabels: Tensor
    /// U (N×K), zero at start.
    public var memory: Tensor
    /// Weight η of the quantisation term (SAAT `yita`).
    public let eta: Double = 50

    /// `seed` is unused (DPSH has nothing random); kept for a uniform factory.
    public init(bits: Int, trainLabels: Tensor, seed: UInt64) {
        precondition(bits >= 1 && trainLabels.rank == 2, "DPSHLoss: validate with makeHashingLoss")
        self.bits = bits
        self.trainLabels = trainLabels
        self.memory = Tensor(zeros: [trainLabels.shape[0], bits])
    }

    public func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0]
        precondition(u.shape == [b, k] && memory.shape == [n, k])
        let s = LossMath.similarity(labels: labels, trainLabels: trainLabels)
        let theta = LossMath.innerProducts(u: u, memory: memory, scale: 0.5)
        let inv = 1.0 / Double(b * n)
        var (sum, g) = LossMath.pairLikelihood(theta: theta, s: s)
        for i in 0..<g.count { g[i] *= Float(inv) }
        var grad = Tensor(zeros: [b, k])
        var quant = 0.0
        for i in 0..<(b * k) {
            let d = u.data[i] - LossMath.sign(u.data[i])
            quant += Double(d) * Double(d)
            grad.data[i] = Float(2 * eta * inv) * d
        }
        LossMath.backProject(g, memory: memory, scale: 0.5, into: &grad)
        return (sum * inv + eta * quant * inv, grad)
    }

    public func lossAndGradient(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        LossMath.writeRows(u, into: &memory, indices: indices)
        return value(u: u, labels: labels, indices: indices)
    }

    public func beginEpoch(_ epoch: Int) {}
    public func saveState() -> [String: Tensor] { [:] }
    public func loadState(_ state: [String: Tensor]) throws { try requireStateKeys(state, [], loss: name) }
}
