/// Plain ℓ∞ PGD on the hash code (reference attack and benchmark): minimise mean(F(x') ⊙ b) with
/// b = sign(F(x)) the clean codes, i.e. push every output away from its clean code.
/// Defaults (Python): ε = 8/255, step 2/255, 10 steps, random start, α = 1.
public final class CodeAwayObjective: AttackObjective {
    /// Guide codes of every attacked image (n×K, values in {−1, 0, +1}).
    public let codes: Tensor
    /// +1: minimise mean(F ⊙ b) (move away from b); −1: maximise it (move towards b).
    public let direction: Float

    public init(codes: Tensor, towards: Bool = false) {
        self.codes = codes
        self.direction = towards ? -1 : 1
    }

    public func evaluate(f: Tensor, rows: Range<Int>, iteration t: Int) -> (loss: Double, grad: Tensor) {
        let k = f.shape[1]
        return codes.data.withUnsafeBufferPointer { c in
            AttackLoss.meanProduct(f: f, codes: c.baseAddress! + rows.lowerBound * k, sign: direction)
        }
    }
}

public enum PGDAttack {
    /// Clean codes sign(F(x)) (0 → +1) of `n` images in the model's current mode, as floats.
    public static func cleanCodes(model: HashingModel, images: UnsafePointer<Float>, n: Int,
                                  shouldStop: () -> Bool = { false }) throws -> Tensor {
        var f = Tensor(zeros: [n, model.bits])
        try f.data.withUnsafeMutableBufferPointer { try model.predict(images: images, n: n, out: $0.baseAddress!, shouldStop: shouldStop) }
        for i in 0..<f.count { f.data[i] = f.data[i] >= 0 ? 1 : -1 }
        return f
    }

    /// Runs PGD away from the clean codes.
    public static func run(model: HashingModel, images: UnsafePointer<Float>, n: Int, config: AttackConfig,
                           out: UnsafeMutablePointer<Float>, shouldStop: () -> Bool = { false }) throws {
        try config.validate()
        let codes = try cleanCodes(model: model, images: images, n: n, shouldStop: shouldStop)
        try AttackEngine.run(model: model, images: images, n: n, objective: CodeAwayObjective(codes: codes),
                             config: config, out: out, shouldStop: shouldStop)
    }
}
