/// CgAT's center-code attack (CgAT `central_adv_train.py`): ℓ∞ PGD minimising mean(F(x') ⊙ c) with
/// c the CHCM center code of the true labels (non-targeted), or maximising it towards the center
/// code of target labels (targeted). Defaults as CgAT's training attack: ε = 8/255, step 2/255,
/// 7 iterations, uniform random start, α = 1.
public enum CenterAttack {
    public static func run(model: HashingModel, images: UnsafePointer<Float>, n: Int, labels: Tensor,
                           trainCodes: Tensor, trainLabels: Tensor, targeted: Bool, config: AttackConfig,
                           out: UnsafeMutablePointer<Float>, shouldStop: () -> Bool = { false }) throws -> Tensor {
        try config.validate()
        let codes = try SemanticCodes.guide(.center, model: model, n: n, labels: labels, trainCodes: trainCodes,
                                            trainLabels: trainLabels)
        try AttackEngine.run(model: model, images: images, n: n,
                             objective: CodeAwayObjective(codes: codes, towards: targeted),
                             config: config, out: out, shouldStop: shouldStop)
        return codes
    }
}
