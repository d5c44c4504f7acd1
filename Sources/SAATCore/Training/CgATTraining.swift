/// CgAT's center-guided adversarial training (CgAT `central_adv_train.py`; Wang et al., WWW 2023):
/// guided by CHCM center codes, loss = L_hash(o_ben) − mean(o_adv ⊙ c) (λ = 1, no quantisation
/// term); SGD lr 0.01, momentum 0.9, weight decay 5e-4; lr × 0.1 at 50 % and 75 % of the
/// iterations; 30 epochs, batch 32 in the paper's setting.
public enum CgATTraining {
    public static let defaultLearningRate: Float = 0.01
    public static let defaultMilestones: [Double] = [0.5, 0.75]

    public static func make(model: HashingModel, loss: HashingLoss, trainLabels: Tensor,
                            lr: Float = defaultLearningRate, momentum: Float = 0.9, weightDecay: Float = 5e-4,
                            lambda: Float = 1, inner: InnerAttack = InnerAttack(),
                            seed: UInt64 = 0) throws -> GuidedAdversarialTraining {
        let opt = try SGD(params: model.params, learningRate: lr, momentum: momentum, weightDecay: weightDecay)
        return try GuidedAdversarialTraining(model: model, loss: loss, optimizer: opt, trainLabels: trainLabels,
                                             lambda: lambda, mu: 0, inner: inner, seed: seed, codeKind: .center)
    }
}
