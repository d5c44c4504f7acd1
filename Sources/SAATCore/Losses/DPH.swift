/// DPH — the pairwise hashing loss used by HAG (Yang et al., "Adversarial Examples for Hamming
/// Space Search", TCYB 2020), as in the SAAT official code (github.com/xandery-geek/SAAT @3743e69,
/// model/hash_model/dph.py:21-32; identical in CgAT model/hashing_loss.py:34-59).
///
/// With θ = u Uᵀ / K (B×N; u the batch outputs B×K, U the memory N×K) and S̃_ij = 2·[y_iᵀY_j > 0] − 1:
///
///     L = 1/(B·N) · Σ_ij (θ_ij − S̃_ij)²
///     ∂L/∂u = (1/K) · G U,   G_ij = 2(θ_ij − S̃_ij)/(B·N)      (U constant)
///
/// Deviation: Y is fixed at construction (the official code fills it batch by batch).
public final class DPHLoss: HashingLossValue {
    public let name = "dph"
    public let bits: Int
    public let trainLabels: Tensor
    /// U (N×K), zero at start.
    public var memory: Tensor

    /// `seed` is unused (DPH has nothing random).
    public init(bits: Int, trainLabels: Tensor, seed: UInt64) {
        precondition(bits >= 1 && trainLabels.rank == 2, "DPHLoss: validate with makeHashingLoss")
        self.bits = bits
        self.trainLabels = trainLabels
        self.memory = Tensor(zeros: [trainLabels.shape[0], bits])
    }

    public func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0]
        precondition(u.shape == [b, k] && memory.shape == [n, k])
        let s = LossMath.similarity(labels: labels, trainLabels: trainLabels)
        var g = LossMath.innerProducts(u: u, memory: memory, scale: 1 / Float(k))
        let inv = 1.0 / Double(b * n)
        var sum = 0.0
        for i in 0..<g.count {
            let d = Double(g[i]) - (2 * Double(s[i]) - 1)
            sum += d * d
            g[i] = Float(2 * d * inv)
        }
        var grad = Tensor(zeros: [b, k])
        LossMath.backProject(g, memory: memory, scale: 1 / Float(k), into: &grad)
        return (sum * inv, grad)
    }

    public func lossAndGradient(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        LossMath.writeRows(u, into: &memory, indices: indices)
        return value(u: u, labels: labels, indices: indices)
    }

    public func beginEpoch(_ epoch: Int) {}
    public func saveState() -> [String: Tensor] { [:] }
    public func loadState(_ state: [String: Tensor]) throws { try requireStateKeys(state, [], loss: name) }
}
