import Glibc

/// DCH — Deep Cauchy Hashing (Cao et al., CVPR 2018), as in the CgAT official code
/// (github.com/xunguangwang/CgAT @0d4a334, model/hashing_loss.py:226-269, `DCHLoss`; SAAT has no DCH).
///
/// In-batch pairs only (the memory is written, as every loss does, but not read). For the batch
/// outputs u (B×K), with cos_ij = u_iᵀu_j / max(‖u_i‖‖u_j‖, 10⁻⁴) and the distance
/// d_ij = K/2 · (1 − min(cos_ij, 0.99)), s_ij = [y_iᵀy_j > 0] (B×B):
///
///     w_ij = s_ij·B²/Σs + (1 − s_ij)·B²/Σ(1 − s)     (w ≡ 1 when all pairs are similar or all dissimilar)
///     L = 1/B² · Σ_ij w_ij [s_ij log(d_ij/γ) + log(1 + γ/d_ij)]
///       + λ/B · Σ_i log(1 + d(|u_i|, 1)/γ),            γ = 20, λ = 0.1
///
/// with d(|u_i|, 1) = K/2·(1 − min(Σ_k|u_ik| / max(‖u_i‖√K, 10⁻⁴), 0.99)). Gradient (both members
/// of a pair are u, so each row gets the term of both roles; clamps pass no gradient where
/// active, |u| has derivative sign(u) with sign(0) = 0):
///
///     ∂L/∂cos_ij = g_ij = −K/2 · w_ij (s_ij/d_ij − γ/(d_ij(d_ij + γ))) / B²   if cos_ij ≤ 0.99, else 0
///     ∂L/∂u_i = Σ_j (A_ij + A_ji) u_j − u_i/‖u_i‖² · Σ_j [‖u_i‖‖u_j‖ ≥ 10⁻⁴] (g_ij + g_ji) cos_ij
///               + quantisation term,   A_ij = g_ij / max(‖u_i‖‖u_j‖, 10⁻⁴)
///
/// (the (A + Aᵀ)u product is one sgemm). Labels of the batch (`labels`) define s; Y is unused.
public final class DCHLoss: MemoryBankLoss {
    public static let spec = LossSpec(schema: LossSpec.schema(
        "dch", "DCH (Cao et al., CVPR 2018): Cauchy loss of in-batch cosine distances plus a Cauchy quantisation term, CgAT's constants.")
    ) { bits, labels, _ in DCHLoss(bits: bits, trainLabels: labels) }

    public let gamma = 20.0, lambda = 0.1
    /// Clamps of the official code: cosine ≤ 0.99, norm products ≥ 10⁻⁴.
    public let maxCos = 0.99, minNorm = 1e-4

    public init(bits: Int, trainLabels: Tensor) { super.init(name: "dch", bits: bits, trainLabels: trainLabels) }

    public override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits
        precondition(u.shape == [b, k])
        let halfK = Double(k) / 2
        let s = LabelSet.similarity(labels, labels)                 // B×B
        let dot = LossMath.innerProducts(u: u, memory: u, scale: 1)   // B×B
        var norm = [Double](repeating: 0, count: b)
        for i in 0..<b {
            var q = 0.0
            for kk in 0..<k { let v = Double(u.data[i * k + kk]); q += v * v }
            norm[i] = q.squareRoot()
        }
        var sPos = 0.0
        for v in s.data where v > 0 { sPos += 1 }
        let total = Double(b * b), sNeg = total - sPos
        let balanced = sPos != 0 && sNeg != 0
        let wPos = balanced ? total / sPos : 1, wNeg = balanced ? total / sNeg : 1

        // Pair term: loss, g_ij = ∂L/∂cos_ij, A_ij = g_ij/den_ij, and the per-row norm coefficients.
        var pairSum = 0.0
        var a = Tensor(zeros: [b, b])
        var g = [Double](repeating: 0, count: b * b)
        var cosv = [Double](repeating: 0, count: b * b)
        var unclamped = [Bool](repeating: false, count: b * b)
        for i in 0..<b {
            for j in 0..<b {
                let ij = i * b + j
                let prod = norm[i] * norm[j]
                let den = Swift.max(prod, minNorm)
                let cosine = Double(dot.data[ij]) / den
                let d = (1 - Swift.min(cosine, maxCos)) * halfK
                let sij = Double(s.data[ij]), w = sij > 0 ? wPos : wNeg
                pairSum += w * (sij * log(d / gamma) + log1p(gamma / d))
                let gij = cosine <= maxCos ? -halfK * w * (sij / d - gamma / (d * (d + gamma))) / total : 0
                g[ij] = gij
                cosv[ij] = cosine
                unclamped[ij] = prod >= minNorm
                a.data[ij] = Float(gij / den)
            }
        }
        // Symmetrise A in place: (A + Aᵀ).
        for i in 0..<b {
            for j in i..<b {
                let v = a.data[i * b + j] + a.data[j * b + i]
                a.data[i * b + j] = v
                a.data[j * b + i] = v
            }
        }
        var grad = Tensor.matmul(a, u)
        for i in 0..<b where norm[i] > 0 {
            var coef = 0.0
            for j in 0..<b where unclamped[i * b + j] {
                coef += (g[i * b + j] + g[j * b + i]) * cosv[i * b + j]
            }
            let f = coef / (norm[i] * norm[i])
            for kk in 0..<k { grad.data[i * k + kk] -= Float(f * Double(u.data[i * k + kk])) }
        }

        // Quantisation term: λ/B Σ_i log(1 + d(|u_i|, 1)/γ).
        var quantSum = 0.0
        let sqrtK = Double(k).squareRoot()
        for i in 0..<b {
            var l1 = 0.0
            for kk in 0..<k { l1 += Double(Swift.abs(u.data[i * k + kk])) }
            let prod = norm[i] * sqrtK
            let den = Swift.max(prod, minNorm)
            let cq = l1 / den
            let dq = (1 - Swift.min(cq, maxCos)) * halfK
            quantSum += log1p(dq / gamma)
            guard cq <= maxCos else { continue }
            let gq = lambda / Double(b) / (gamma + dq) * -halfK          // ∂L/∂cq_i
            let normTerm = prod >= minNorm ? cq / (norm[i] * norm[i]) : 0
            for kk in 0..<k {
                let x = Double(u.data[i * k + kk])
                let dcq = Double(LossMath.sign(Float(x))) / den - normTerm * x
                grad.data[i * k + kk] += Float(gq * dcq)
            }
        }
        return (pairSum / total + lambda * quantSum / Double(b), grad)
    }
}
