/// SAAT's mainstay-guided attack (SAAT `adv_attack.py`, `model/adv_generator/pgd.py`).
///
/// With b the DMFL mainstay code of the query's true labels (non-targeted) or of the target labels
/// (targeted) and s_ik = F(x')_ik · b_ik, the masked loss minimised by ℓ∞ PGD is
///   non-targeted: L = Σ m (s + 2) s / Σ m,  m_ik = [s_ik > −0.5]  (bits already flipped past −0.5 drop out)
///   targeted:     L = −Σ m (s + 2) s / Σ m, m_ik = [s_ik < 0.5]
/// with the mask held constant for the gradient. Defaults: ε = 8/255, step 1/255, 100 iterations,
/// uniform random start, α schedule on tanh(α·g). The official sums run over the attacked batch;
/// here the gradient is left undivided by Σ m (a positive factor common to the batch, which the
/// sign step ignores), so each image's step is bitwise independent of the images attacked with it;
/// the reported loss is the matching undivided sum ±Σ m (s + 2) s.
public final class MainstayMaskedObjective: AttackObjective {
    public let codes: Tensor
    public let targeted: Bool

    public init(codes: Tensor, targeted: Bool) {
        self.codes = codes
        self.targeted = targeted
    }

    public func evaluate(f: Tensor, rows: Range<Int>, iteration t: Int) -> (loss: Double, grad: Tensor) {
        let k = f.shape[1], cnt = f.count
        var g = Tensor(zeros: f.shape)
        var loss: Double = 0
        codes.data.withUnsafeBufferPointer { cb in
            let c = cb.baseAddress! + rows.lowerBound * k
            f.data.withUnsafeBufferPointer { fp in
                g.data.withUnsafeMutableBufferPointer { gp in
                    for i in 0..<cnt {
                        let s = fp[i] * c[i]
                        let on = targeted ? s < 0.5 : s > -0.5
                        if on {
                            loss += Double((s + 2) * s)
                            gp[i] = (2 * s + 2) * c[i]
                        }
                    }
                    if targeted { for i in 0..<cnt { gp[i] = -gp[i] } }
                }
            }
        }
        return (targeted ? -loss : loss, g)
    }
}

public enum SAATAttack {
    public static let spec = AttackSpec.guided(
        "saat", python: "SAATAttack",
        summary: "SAAT's attack: masked PGD away from (or towards) the DMFL mainstay code of the labels.",
        kind: .mainstay,
        parameters: [AttackParameters.eps(8.0 / 255), AttackParameters.step(1.0 / 255), AttackParameters.steps(100),
                     AttackParameters.targeted, AttackParameters.seed, AttackParameters.randomStart(true),
                     AttackParameters.alphaSchedule(true)],
        alphaSchedule: nil) { MainstayMaskedObjective(codes: $0, targeted: $1) }
}
