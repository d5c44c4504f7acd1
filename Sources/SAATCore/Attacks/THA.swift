/// THA, the targeted hashing attack of "Targeted Attack and Defense for Deep Hashing" (Wang et
/// al., SIGIR 2021; SAAT `tha.py`): a prototype network P (label → code, `PrototypeNet`) is
/// trained on random unique database label vectors against the database codes with the circle
/// loss (Adam 1e-4, β (0.5, 0.999), lr × 0.1 at 50 %/75 % of the steps; the paper uses 100
/// epochs × 300 steps), then PGD without random start minimises −mean(F(x') ⊙ sign(P(y_t))),
/// step 1/255, 100 iterations, α schedule.
public enum THAAttack {
    public static let schema = Schema(
        .attack, "tha", python: "THA",
        summary: "THA (Wang et al., SIGIR 2021): PGD towards the code a label → code prototype net gives the target label.",
        inputs: [AttackParameters.dbCodes, AttackParameters.dbLabels],
        parameters: [AttackParameters.prototypeSteps, AttackParameters.prototypeBatch,
                     AttackParameters.eps(8.0 / 255), AttackParameters.step(1.0 / 255), AttackParameters.steps(100),
                     AttackParameters.seed])
    public static let spec = AttackSpec(schema: schema) { bits, inputs, s, stop in
        let (dc, dl) = try inputs.database(bits: bits)
        let net = try trainPrototype(dbCodes: dc, dbLabels: dl, bits: bits, steps: s.int("prototype_steps"),
                                     batch: s.int("prototype_batch"), seed: UInt64(s.int("seed")), shouldStop: stop)
        return PreparedAttack(schema: schema, settings: s, bits: bits, targeted: true, labelClasses: dl.shape[1],
                              guides: true, config: AttackParameters.signConfig(s, randomStart: false, alphaSchedule: true)) { _, _, _, labels, _, _ in
            let codes = net.codes(labels!)
            return (CodeProductObjective(codes: codes, .towards), codes)
        }
    }

    /// Trains the prototype net for `steps` Adam steps of `batch` random unique label rows.
    public static func trainPrototype(dbCodes: Tensor, dbLabels: Tensor, bits: Int, steps: Int, batch: Int,
                                      seed: UInt64, shouldStop: () -> Bool = { false }) throws -> PrototypeNet {
        let net = try PrototypeNet(classes: dbLabels.shape[1], bits: bits, seed: seed)
        let uniq = LabelSet.uniqueRows(dbLabels)
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
}
