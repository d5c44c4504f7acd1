/// Plain ℓ∞ PGD on the hash code (reference attack and benchmark): minimise mean(F(x') ⊙ b) with
/// b = sign(F(x)) the clean codes, i.e. push every output away from its clean code.
public enum PGDAttack {
    public static let schema = Schema(
        .attack, "pgd", python: "PGD",
        summary: "Plain ℓ∞ PGD on the hash code: moves each output away from its clean code sign(F(x)).",
        parameters: [AttackParameters.eps(8.0 / 255), AttackParameters.step(2.0 / 255), AttackParameters.steps(10),
                     AttackParameters.randomStart(true), AttackParameters.seed])
    public static let spec = AttackSpec(schema: schema) { bits, _, s, _ in
        PreparedAttack(schema: schema, settings: s, bits: bits, targeted: false, labelClasses: nil, guides: false,
                       config: AttackParameters.signConfig(s, alphaSchedule: false)) { model, images, n, _, _, stop in
            (CodeProductObjective(codes: try cleanCodes(model: model, images: images, n: n, shouldStop: stop), .away), nil)
        }
    }

    /// Clean codes sign(F(x)) (0 → +1) of `n` images in the model's current mode, as floats.
    public static func cleanCodes(model: HashingModel, images: UnsafePointer<Float>, n: Int,
                                  shouldStop: () -> Bool = { false }) throws -> Tensor {
        var f = try model.outputs(images: images, n: n, shouldStop: shouldStop)
        for i in 0..<f.count { f.data[i] = f.data[i] >= 0 ? 1 : -1 }
        return f
    }
}

/// L = ±Σ_i mean_k(F_ik b_ik) / nominalAttackBatch, gradient ±b/(K·nominalAttackBatch) (the mean
/// over images of the papers' loss, with a fixed batch size so each image's step does not depend
/// on the images attacked with it; the sign step makes any positive factor immaterial): `.away` minimises
/// mean(F ⊙ b) (drives F away from the guide codes b: PGD, CgAT's center attack, the inner attack
/// of SAAT/CgAT training), `.towards` maximises it (targeted attacks: DHTA, P2P, THA, ATRDH's
/// inner attack).
public final class CodeProductObjective: AttackObjective {
    public enum Direction: Sendable { case away, towards }
    /// Guide codes of every attacked image (n×K, values in {−1, 0, +1}).
    public let codes: Tensor
    public let direction: Direction

    public init(codes: Tensor, _ direction: Direction) {
        self.codes = codes
        self.direction = direction
    }

    public func evaluate(f: Tensor, rows: Range<Int>, iteration t: Int) -> (loss: Double, grad: Tensor) {
        let k = f.shape[1], cnt = f.count
        let sign: Float = direction == .away ? 1 : -1
        var g = Tensor(zeros: f.shape)
        var s: Double = 0
        let scale = sign / (Float(k) * nominalAttackBatch)
        codes.data.withUnsafeBufferPointer { cb in
            let c = cb.baseAddress! + rows.lowerBound * k
            f.data.withUnsafeBufferPointer { fp in
                g.data.withUnsafeMutableBufferPointer { gp in
                    for i in 0..<cnt {
                        s += Double(fp[i] * c[i])
                        gp[i] = scale * c[i]
                    }
                }
            }
        }
        return (Double(sign) * s / (Double(k) * Double(nominalAttackBatch)), g)
    }
}
