/// SAAT's minimax adversarial training (SAAT `adv_training.py`, `defense.py`; Yuan et al., TIFS 2023):
/// guided by DMFL mainstay codes, loss = L_hash(o_ben) − λ·mean(o_adv ⊙ b) + μ·mean((o_adv − sign o_adv)²)
/// with λ = 1, μ = 1e-4; SGD lr 0.05, no momentum, weight decay 1e-5; lr × 0.1 at 50 % and 75 % of
/// the iterations; 20 epochs, batch 32 in the paper's setting. L_hash has SAAT's constants
/// (`LossConstants.saat`, the hashing models' own `loss_function`).
public enum SAATTraining {
    public static let spec = GuidedAdversarialTraining.recipe(
        "saat", python: "SAATTraining",
        summary: "SAAT (Yuan et al., TIFS 2023): minimax adversarial training guided by DMFL mainstay codes.",
        codeKind: .mainstay, epochs: 20, lr: 0.05, momentum: 0, weightDecay: 1e-5,
        weights: [.float("lambda_adv", 1, min: 0, "weight λ of the adversarial term −mean(F(x') ⊙ b)"),
                  .float("mu", 1e-4, min: 0, "weight μ of the quantisation term mean((F(x') − sign F(x'))²)")],
        lossConstants: .saat)
}
