/// HAG, "Adversarial examples for Hamming space search" (Yang et al., IEEE TCYB 2020), as
/// re-implemented in SAAT `model/attack_model/hag.py`: non-targeted, optimises the image with SGD
/// (lr 100, momentum 0.9) under the α schedule, 2000 iterations, projected to the ε-ball and [0,1].
///
/// With h = F(x) the fixed clean outputs and ĥ = F(x'; α) (SAAT hag.py:17-41, `mask_code` and
/// `hag_loss`):
///   m_ik = [|ĥ_ik − sign(h_ik)| < 1 + t],  t = 0.5
///   L = mean_i((Σ_k m_ik ĥ_ik h_ik / Σ_k m_ik + 1)²) + β·mean_i((1/K)·Σ_k m_ik ĥ_ik)²,  β = 1
/// The β term averages the *masked* outputs m ⊙ ĥ over all K bits (hag.py:35,40: `adv_code` is
/// replaced by `mask * adv_code` before `mean(dim=1)`), so bits already pushed past the margin
/// count as 0 in the balance term rather than with their value. The mask is held constant (it is
/// a step function of ĥ), so
///   ∂L_i/∂ĥ_ik = m_ik·(2(a_i + 1)·h_ik / Σ_k m_ik + 2β·c_i / K),  a_i = Σ m ĥ h / Σ m,  c_i = Σ m ĥ / K.
/// The mean over images uses `nominalAttackBatch` (128, SAAT's attack batch)
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
            var msum: Float = 0, dot: Float = 0, masked: Float = 0
            for j in 0..<k {
                let hv = clean.data[h + j], fv = f.data[r + j]
                let s: Float = hv >= 0 ? 1 : -1
                if abs(fv - s) < 1 + t { msum += 1; dot += fv * hv; masked += fv }
            }
            let c = masked / Float(k)
            let a = msum > 0 ? dot / msum : 0
            loss += Double((a + 1) * (a + 1) + beta * c * c)
            for j in 0..<k {
                let hv = clean.data[h + j], fv = f.data[r + j]
                let s: Float = hv >= 0 ? 1 : -1
                // An unmasked bit is in neither term: zero gradient.
                guard abs(fv - s) < 1 + t else { continue }
                g.data[r + j] = (2 * (a + 1) * hv / msum + 2 * beta * c / Float(k)) / nominalBatch
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
