/// CgAT's center-code attack (CgAT `central_adv_train.py`): ℓ∞ PGD minimising mean(F(x') ⊙ c) with
/// c the CHCM center code of the true labels (non-targeted), or maximising it towards the center
/// code of target labels (targeted). Its defaults (`spec`) are CgAT's training-time attack, with a
/// uniform random start and α = 1.
public enum CenterAttack {
    public static let spec = AttackSpec.guided(
        "center", python: "CenterAttack",
        summary: "CgAT's center-code attack: PGD away from (or towards) the CHCM center code of the labels.",
        kind: .center,
        parameters: [AttackParameters.eps(8.0 / 255), AttackParameters.step(2.0 / 255), AttackParameters.steps(7),
                     AttackParameters.targeted, AttackParameters.seed, AttackParameters.randomStart(true)],
        alphaSchedule: false) { CodeProductObjective(codes: $0, $1 ? .towards : .away) }
}
