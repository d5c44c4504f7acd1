#if canImport(Glibc)
import Glibc
#endif

/// SDHA, "Smart Deep Hashing Attack" (Lu et al., ICMR 2021), as re-implemented in SAAT
/// `model/attack_model/sdha.py`: Adam on the image (lr 0.01, β (0.9, 0.999)), 1500 iterations,
/// α schedule, loss MSE(x', x) + (25/K)·L_sur, projected to the ε-ball and [0,1].
///
/// For query i with relevant training codes R_i (training items sharing a label with the query's
/// labels — or the target labels when targeted) and q = F(x'_i; α):
///   non-targeted: L_sur = −(1/B) Σ_i mean_{r∈R_i} [ (½Σ_k|q_k − r_k|σ(5q_k r_k) + Σ_k(1 − σ(5q_k r_k)))
///                                                   · (d_H(sign q, r) + 1e-8)^(−1/2) ]
///   targeted:     L_sur = +(1/B) Σ_i mean_{r∈R_i} [ ½Σ_k|q_k − r_k|σ(−10q_k r_k) · (d_H(sign q, r) + 1e-8)^0.3 ]
/// B is `nominalAttackBatch` (not the number of images attacked together, so an image's Adam steps
/// do not depend on the others; Adam's update is invariant to the factor up to its ε = 1e-8).
/// The Hamming factor is held constant for the gradient (sign has none). A query with no relevant
/// training item uses its own clean code as R_i (non-targeted) or contributes nothing (targeted).
public final class SDHAObjective: AttackObjective {
    let trainCodes: Tensor
    /// Relevant training rows of every attacked image (global row order).
    let relevant: [[Int]]
    let clean: Tensor
    let targeted: Bool
    let weight: Float

    public init(trainCodes: Tensor, relevant: [[Int]], clean: Tensor, targeted: Bool) {
        self.trainCodes = trainCodes
        self.relevant = relevant
        self.clean = clean
        self.targeted = targeted
        self.weight = 25 / Float(trainCodes.shape[1])
    }

    @inline(__always) static func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

    public func evaluate(f: Tensor, rows: Range<Int>, iteration: Int) -> (loss: Double, grad: Tensor) {
        let n = f.batch, k = f.shape[1]
        var g = Tensor(zeros: f.shape)
        var total = 0.0
        let bInv = 1 / nominalAttackBatch
        var r = [Float](repeating: 0, count: k)
        for i in 0..<n {
            let q = Array(f.data[(i * k)..<((i + 1) * k)])
            var set = relevant[rows.lowerBound + i]
            var useClean = false
            if set.isEmpty {
                if targeted { continue }
                useClean = true
                set = [-1]
            }
            let scale = weight * bInv / Float(set.count)
            var sumI = 0.0
            for j in set {
                if useClean {
                    for t in 0..<k { r[t] = clean.data[(rows.lowerBound + i) * k + t] >= 0 ? 1 : -1 }
                } else {
                    for t in 0..<k { r[t] = trainCodes.data[j * k + t] }
                }
                var dh: Float = 0
                for t in 0..<k where (q[t] >= 0 ? 1 : -1) != r[t] { dh += 1 }
                if !targeted {
                    let fac = powf(dh + 1e-8, -0.5)
                    var term: Float = 0
                    for t in 0..<k {
                        let qr = q[t] * r[t], s = SDHAObjective.sigmoid(5 * qr), d = q[t] - r[t]
                        term += 0.5 * abs(d) * s + (1 - s)
                        let ds = s * (1 - s) * 5 * r[t]
                        let dterm = 0.5 * (d > 0 ? 1 : (d < 0 ? -1 : 0)) * s + 0.5 * abs(d) * ds - ds
                        // L_sur carries a minus sign: gradient −fac·dterm.
                        g.data[i * k + t] -= scale * fac * dterm
                    }
                    sumI -= Double(term * fac)
                } else {
                    let fac = powf(dh + 1e-8, 0.3)
                    var term: Float = 0
                    for t in 0..<k {
                        let qr = q[t] * r[t], s = SDHAObjective.sigmoid(-10 * qr), d = q[t] - r[t]
                        term += 0.5 * abs(d) * s
                        let ds = s * (1 - s) * (-10) * r[t]
                        let dterm = 0.5 * (d > 0 ? 1 : (d < 0 ? -1 : 0)) * s + 0.5 * abs(d) * ds
                        g.data[i * k + t] += scale * fac * dterm
                    }
                    sumI += Double(term * fac)
                }
            }
            total += sumI / Double(set.count)
        }
        return (Double(weight) * total * Double(bInv), g)
    }
}

public enum SDHAAttack {
    public static let schema = Schema(
        .attack, "sdha", python: "SDHA",
        summary: "SDHA (Lu et al., ICMR 2021): Adam on the image, MSE(x', x) plus a surrogate loss against relevant training codes.",
        inputs: [AttackParameters.trainCodes, AttackParameters.trainLabels],
        parameters: [AttackParameters.eps(8.0 / 255),
                     .float("lr", 0.01, min: 0, lowerOpen: true, "Adam learning rate on the image"),
                     AttackParameters.steps(1500), AttackParameters.targeted])
    public static let spec = AttackSpec(schema: schema) { bits, inputs, s, _ in
        let (tc, tl) = try inputs.trainingSet(bits: bits)
        let targeted = s.bool("targeted")
        let config = AttackConfig(eps: s.float("eps"), steps: s.int("steps"),
                                  update: .adam(lr: s.float("lr"), beta1: 0.9, beta2: 0.999),
                                  randomStart: false, alphaSchedule: true, mseWeight: 1)
        return PreparedAttack(schema: schema, settings: s, bits: bits, targeted: targeted, labelClasses: tl.shape[1],
                              guides: false, config: config) { model, images, n, labels, _, stop in
            let clean = try model.outputs(images: images, n: n, shouldStop: stop)
            return (SDHAObjective(trainCodes: tc, relevant: LabelSet.relevant(labels!, among: tl), clean: clean,
                                  targeted: targeted), nil)
        }
    }
}
