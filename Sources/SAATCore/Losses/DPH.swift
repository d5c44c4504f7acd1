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
public final class DPHLoss: MemoryBankLoss {
    public static let spec = LossSpec(schema: LossSpec.schema(
        "dph", "DPH, HAG's pairwise loss (Yang et al., TCYB 2020): squared error of u·Uᵀ/K against ±1 similarities.")
    ) { bits, labels, _ in DPHLoss(bits: bits, trainLabels: labels) }

    public init(bits: Int, trainLabels: Tensor) { super.init(name: "dph", bits: bits, trainLabels: trainLabels) }

    public override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0]
        precondition(u.shape == [b, k] && memory.shape == [n, k])
        let s = LabelSet.similarity(labels, trainLabels)
        var g = LossMath.innerProducts(u: u, memory: memory, scale: 1 / Float(k))
        let inv = 1.0 / Double(b * n)
        var sum = 0.0
        for i in 0..<g.count {
            let d = Double(g.data[i]) - (2 * Double(s.data[i]) - 1)
            sum += d * d
            g.data[i] = Float(2 * d * inv)
        }
        var grad = Tensor(zeros: [b, k])
        LossMath.backProject(g, memory: memory, scale: 1 / Float(k), into: &grad)
        return (sum * inv, grad)
    }
}
