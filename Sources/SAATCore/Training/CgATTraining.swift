/// CgAT's center-guided adversarial training (CgAT `central_adv_train.py`; Wang et al., WWW 2023):
/// guided by CHCM center codes, loss = L_hash(o_ben) − λ·mean(o_adv ⊙ c) (λ = 1, no quantisation
/// term); SGD lr 0.01, momentum 0.9, weight decay 5e-4; lr × 0.1 at 50 % and 75 % of the
/// iterations; 30 epochs, batch 32 in the paper's setting (central_adv_train.py:64-72,94-96).
/// L_hash has CgAT's constants (model/hashing_loss.py via `get_hashing_loss`, :103): DPSH with
/// η = 0.001 on the mean over the batch outputs, HashNet with a = 0.1 and no continuation, CSQ
/// with λ = 1e-4 (`LossConstants.cgat`; DPH, DSDH and DCH are the same in both codes).
public enum CgATTraining {
    public static let spec = GuidedAdversarialTraining.recipe(
        "cgat", python: "CgATTraining",
        summary: "CgAT (Wang et al., WWW 2023): adversarial training guided by CHCM center codes.",
        codeKind: .center, epochs: 30, lr: 0.01, momentum: 0.9, weightDecay: 5e-4,
        weights: [.float("lambda_adv", 1, min: 0, "weight λ of the adversarial term −mean(F(x') ⊙ c)")],
        lossConstants: .cgat)
}
