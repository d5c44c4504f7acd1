/// P2P, the point-to-point targeted attack of Bai et al. (ECCV 2020): DHTA with a single anchor
/// item (n_t = 1), i.e. the code of one random database item carrying the target label is the
/// target (SAAT `attack.py`). Same loss, schedule and ε = 0.032 as `DHTAAttack`.
public enum P2PAttack {
    public static let anchorCount = 1

    public static func run(model: HashingModel, images: UnsafePointer<Float>, n: Int, targets: Tensor,
                           dbCodes: Tensor, dbLabels: Tensor, config: AttackConfig,
                           out: UnsafeMutablePointer<Float>, shouldStop: () -> Bool = { false }) throws -> Tensor {
        try DHTAAttack.run(model: model, images: images, n: n, targets: targets, dbCodes: dbCodes, dbLabels: dbLabels,
                           nt: anchorCount, config: config, out: out, shouldStop: shouldStop)
    }
}
