/// SAAT's minimax adversarial training (SAAT `adv_training.py`, `defense.py`; Yuan et al., TIFS 2023):
/// guided by DMFL mainstay codes, loss = L_hash(o_ben) − λ·mean(o_adv ⊙ b) + μ·mean((o_adv − sign o_adv)²)
/// with λ = 1, μ = 1e-4; SGD lr 0.05, no momentum, weight decay 1e-5; lr × 0.1 at 50 % and 75 % of
/// the iterations; 20 epochs, batch 32 in the paper's setting.
public enum SAATTraining {
    public static let defaultLearningRate: Float = 0.05
    public static let defaultMilestones: [Double] = [0.5, 0.75]

    public static func make(model: HashingModel, loss: HashingLoss, trainLabels: Tensor,
                            lr: Float = defaultLearningRate, momentum: Float = 0, weightDecay: Float = 1e-5,
                            lambda: Float = 1, mu: Float = 1e-4, inner: InnerAttack = InnerAttack(),
                            seed: UInt64 = 0) throws -> GuidedAdversarialTraining {
        let opt = try SGD(params: model.params, learningRate: lr, momentum: momentum, weightDecay: weightDecay)
        return try GuidedAdversarialTraining(model: model, loss: loss, optimizer: opt, trainLabels: trainLabels,
                                             lambda: lambda, mu: mu, inner: inner, seed: seed, codeKind: .mainstay)
    }
}
