#if canImport(Glibc)
import Glibc
#endif

/// The circle loss that trains the label → code prototype net of THA and ATRDH (Wang et al.,
/// SIGIR 2021; SAAT `tha.py`):
///   L = softplus(logsumexp_{neg}(a_n s_n) + logsumexp_{pos}(−a_p s_p)) / B + Σ(sign(p) − p)² / (10⁴·B)
/// where s = p·b_jᵀ/K over all (batch item, training item) pairs, positive pairs share a label,
/// a_p = max(2 − s_p, 0), a_n = max(s_n + 2, 0) held constant (γ = 1, no margin). Deviation: the
/// official code restricts pairs to the upper triangle of the B×N matrix (a quirk); here every
/// pair counts.
public enum CircleLoss {
    /// Circle loss + quantisation of a batch of label vectors `y` (B×C) against the training
    /// codes (N×K, ±1) and labels (N×C). Returns the loss and ∂L/∂p.
    /// `weightsAt`: outputs at which the (detached) weights a_p, a_n are evaluated; nil = `p`
    /// (training). A gradient check passes the unperturbed outputs so a stays constant.
    public static func value(p: Tensor, y: Tensor, trainCodes: Tensor, trainLabels: Tensor,
                             weightsAt: Tensor? = nil) -> (Double, Tensor) {
        let b = p.batch, k = p.shape[1], n = trainCodes.batch
        func similarities(_ q: Tensor) -> Tensor { Tensor.matmul(q, trainCodes, transB: true, alpha: 1 / Float(k)) }
        let s = similarities(p)
        let sw = weightsAt.map(similarities) ?? s
        let sim = LabelSet.overlaps(y, trainLabels)
        // logits: positives −a_p s_p, negatives a_n s_n; two log-sum-exps over all pairs.
        // Detached weights a_p = max(2 − s_p, 0), a_n = max(s_n + 2, 0).
        var a = [Double](repeating: 0, count: b * n)
        for i in 0..<(b * n) {
            let w = Double(sw.data[i])
            a[i] = sim.data[i] > 0 ? max(2 - w, 0) : max(w + 2, 0)
        }
        var maxP = -Double.infinity, maxN = -Double.infinity
        for i in 0..<(b * n) {
            let v = Double(s.data[i])
            if sim.data[i] > 0 { maxP = max(maxP, -a[i] * v) } else { maxN = max(maxN, a[i] * v) }
        }
        var sumP = 0.0, sumN = 0.0
        for i in 0..<(b * n) {
            let v = Double(s.data[i])
            if sim.data[i] > 0 { sumP += exp(-a[i] * v - maxP) } else { sumN += exp(a[i] * v - maxN) }
        }
        let lseP = sumP > 0 ? maxP + log(sumP) : -Double.infinity
        let lseN = sumN > 0 ? maxN + log(sumN) : -Double.infinity
        var gS = Tensor(zeros: [b, n])
        var loss = 0.0
        if lseP.isFinite || lseN.isFinite {
            let z = (lseP.isFinite ? lseP : 0) + (lseN.isFinite ? lseN : 0)
            let softplus = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))
            let dz = 1 / (1 + exp(-z))
            loss = softplus / Double(b)
            for i in 0..<(b * n) {
                let v = Double(s.data[i])
                if sim.data[i] > 0 {
                    gS.data[i] = Float(dz * exp(-a[i] * v - lseP) * (-a[i]) / Double(b))
                } else {
                    gS.data[i] = Float(dz * exp(a[i] * v - lseN) * a[i] / Double(b))
                }
            }
        }
        // ∂L/∂p = (∂L/∂S) · B_train / K, plus the quantisation term.
        var gp = Tensor.matmul(gS, trainCodes, alpha: 1 / Float(k))
        var q = 0.0
        let qs = 1 / (1e4 * Float(b))
        for i in 0..<(b * k) {
            let v = p.data[i], sg: Float = v > 0 ? 1 : (v < 0 ? -1 : 0)
            q += Double((sg - v) * (sg - v))
            gp.data[i] += -2 * (sg - v) * qs
        }
        return (loss + q * Double(qs), gp)
    }
}
