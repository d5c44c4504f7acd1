/// HAG, "Adversarial examples for Hamming space search" (Yang et al., IEEE TCYB 2020), as
/// re-implemented in SAAT `model/attack_model/hag.py`: non-targeted, optimises the image with SGD
/// (lr 100, momentum 0.9) under the α schedule, 2000 iterations, projected to the ε-ball and [0,1].
///
/// With h = F(x) the fixed clean outputs and ĥ = F(x'; α):
///   m_ik = [|ĥ_ik − sign(h_ik)| < 1 + t],  t = 0.5
///   L = mean_i((Σ_k m ĥ h / Σ_k m + 1)²) + β·mean_i(mean_k ĥ_ik)²,  β = 1
/// (mask held constant). The mean over images uses `nominalAttackBatch` (128, SAAT's attack batch)
/// so each image's SGD step does not depend on how many images are attacked together.
public final class HAGObjective: AttackObjective {
    public let clean: Tensor
    public let t: Float
    public let beta: Float
    public let nominalBatch: Float

    public init(clean: Tensor, t: Float = 0.5, beta: Float = 1, nominalBatch: Float = nominalAttackBatch) {
        self.clean = clean; self.t = t; self.beta = beta; self.nominalBatch = nominalBatch
    }

    public func evaluate(f: Tensor, rows: Range<Int>, iteration: Int) -> (loss: Double, grad: Tensor) {
        let n = f.batch, k = f.shape[1]
        var g = Tensor(zeros: f.shape)
        var loss = 0.0
        for i in 0..<n {
            let h = (rows.lowerBound + i) * k, r = i * k
            var msum: Float = 0, dot: Float = 0, mean: Float = 0
            for j in 0..<k {
                let hv = clean.data[h + j], fv = f.data[r + j]
                let s: Float = hv >= 0 ? 1 : -1
                mean += fv
                if abs(fv - s) < 1 + t { msum += 1; dot += fv * hv }
            }
            mean /= Float(k)
            let a = msum > 0 ? dot / msum : 0
            loss += Double((a + 1) * (a + 1) + beta * mean * mean)
            for j in 0..<k {
                let hv = clean.data[h + j], fv = f.data[r + j]
                let s: Float = hv >= 0 ? 1 : -1
                var gj = 2 * beta * mean / Float(k)
                if msum > 0 && abs(fv - s) < 1 + t { gj += 2 * (a + 1) * hv / msum }
                g.data[r + j] = gj / nominalBatch
            }
        }
        return (loss / Double(nominalBatch), g)
    }
}

public enum HAGAttack {
    public static let schema = Schema(
        .attack, "hag", python: "HAG",
        summary: "HAG (Yang et al., IEEE TCYB 2020): SGD with momentum on the image against the clean outputs, α schedule.",
        parameters: [AttackParameters.eps(8.0 / 255),
                     .float("lr", 100, min: 0, lowerOpen: true, "SGD learning rate on the image"),
                     .float("momentum", 0.9, min: 0, max: 1, upperOpen: true, "SGD momentum on the image"),
                     AttackParameters.steps(2000)])
    public static let spec = AttackSpec(schema: schema) { bits, _, s, _ in
        let config = AttackConfig(eps: s.float("eps"), steps: s.int("steps"),
                                  update: .sgd(lr: s.float("lr"), momentum: s.float("momentum")),
                                  randomStart: false, alphaSchedule: true)
        return PreparedAttack(schema: schema, settings: s, bits: bits, targeted: false, labelClasses: nil,
                              guides: false, config: config) { model, images, n, _, _, stop in
            (HAGObjective(clean: try model.outputs(images: images, n: n, shouldStop: stop)), nil)
        }
    }
}
