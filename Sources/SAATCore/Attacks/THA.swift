/// THA, the targeted hashing attack of "Targeted Attack and Defense for Deep Hashing" (Wang et
/// al., SIGIR 2021; SAAT `tha.py`): a prototype network P (label → code, `PrototypeNet`) is
/// trained on random unique database label vectors against the database codes with the circle
/// loss (Adam 1e-4, β (0.5, 0.999), lr × 0.1 at 50 %/75 % of the steps; the paper uses 100
/// epochs × 300 steps), then PGD without random start minimises −mean(F(x') ⊙ sign(P(y_t))),
/// step 1/255, 100 iterations, α schedule.
public enum THAAttack {
    /// Trains the prototype net for `steps` Adam steps of `batch` random unique label rows.
    public static func trainPrototype(dbCodes: Tensor, dbLabels: Tensor, bits: Int, steps: Int, batch: Int,
                                      seed: UInt64, shouldStop: () -> Bool = { false }) throws -> PrototypeNet {
        try require(steps >= 1, "prototype_steps", "an int ≥ 1, got \(steps)")
        try require(batch >= 1, "prototype_batch", "an int ≥ 1, got \(batch)")
        let net = try PrototypeNet(classes: dbLabels.shape[1], bits: bits, seed: seed)
        let uniq = ATRDHTraining.unique(dbLabels)
        var rng = SeededRNG(seed: seed &+ 0x7A4)
        let sched = MultiStepSchedule(base: net.optimizer.learningRate, fractions: [0.5, 0.75], total: steps)
        let c = dbLabels.shape[1]
        for s in 0..<steps {
            if s % 10 == 0 && shouldStop() { throw SAATError.interrupted }
            var y = Tensor(zeros: [batch, c])
            for i in 0..<batch {
                let row = uniq[rng.below(uniq.count)]
                for t in 0..<c { y.data[i * c + t] = row[t] }
            }
            net.optimizer.learningRate = sched.rate(at: s)
            net.trainStep(y: y, trainCodes: dbCodes, trainLabels: dbLabels)
        }
        return net
    }

    public static func run(model: HashingModel, images: UnsafePointer<Float>, n: Int, targets: Tensor,
                           prototype: PrototypeNet, config: AttackConfig, out: UnsafeMutablePointer<Float>,
                           shouldStop: () -> Bool = { false }) throws -> Tensor {
        try config.validate()
        try require(targets.batch == n, "labels", "one target label row per image (\(n)), got \(targets.batch)")
        try require(targets.shape[1] == prototype.classes, "labels", "\(prototype.classes) label columns, got \(targets.shape[1])")
        let codes = prototype.codes(targets)
        try AttackEngine.run(model: model, images: images, n: n, objective: CodeAwayObjective(codes: codes, towards: true),
                             config: config, out: out, shouldStop: shouldStop)
        return codes
    }
}
