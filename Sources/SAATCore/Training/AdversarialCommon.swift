/// Pieces shared by the adversarial-training methods (SAAT, CgAT, ATRDH).
enum AdversarialCommon {
    /// sign(F(x)) (0 → +1) of the whole training set, in eval mode (deterministic), as the initial
    /// "benign" training codes U_ben of SAAT/CgAT's `adv_training.py` / `central_adv_train.py`.
    static func encodeAll(model: HashingModel, images: ImageSource, shouldStop: () -> Bool) throws -> Tensor {
        let saved = model.mode
        model.mode = .eval
        defer { model.mode = saved }
        var f = Tensor(zeros: [images.count, model.bits])
        try f.data.withUnsafeMutableBufferPointer {
            try model.predict(images: images.base, n: images.count, out: $0.baseAddress!, shouldStop: shouldStop)
        }
        for i in 0..<f.count { f.data[i] = f.data[i] >= 0 ? 1 : -1 }
        return f
    }

    /// Writes sign(u) (0 → +1) of a batch into rows `indices` of `codes`.
    static func setRows(_ codes: inout Tensor, _ indices: [Int], signOf u: Tensor) {
        let k = codes.shape[1]
        for (r, i) in indices.enumerated() {
            for t in 0..<k { codes.data[i * k + t] = u.data[r * k + t] >= 0 ? 1 : -1 }
        }
    }

    /// Stacks two batches along the batch axis ([a; b]) so one forward/backward serves both.
    static func stack(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(Array(a.shape.dropFirst()) == Array(b.shape.dropFirst()))
        var s = a.shape
        s[0] = a.batch + b.batch
        return Tensor(shape: s, data: a.data + b.data)
    }
}

/// The inner maximisation of SAAT and CgAT training (`central_adv_train.py` `pgd`, SAAT
/// `adv_training.py`): ℓ∞ PGD minimising mean(F(x') ⊙ b) from a uniform random start, α = 1,
/// in the model's train mode (the official code never calls eval here).
/// Its settings come from the recipes' schemas (`TrainingParameters.inner`).
public struct InnerAttack: Sendable {
    public var eps: Float
    public var step: Float
    public var steps: Int
    public init(eps: Float, step: Float, steps: Int) {
        self.eps = eps; self.step = step; self.steps = steps
    }

    func config(seed: UInt64) -> AttackConfig {
        AttackConfig(eps: eps, steps: steps, update: .sign(step: step), randomStart: true, alphaSchedule: false, seed: seed)
    }

    /// x' for this process's images `batch.x` of a training batch, moving F(x') away from `codes`
    /// (one row per image of `batch.x`) or towards them. Image i's random start comes from the
    /// stream (seed, its row in the whole batch); in data-parallel training the dropout masks of
    /// every iteration are drawn for the whole batch (`DataParallel.withDropoutRows`).
    func run(model: HashingModel, batch: TrainingBatch, codes: Tensor, _ direction: CodeProductObjective.Direction,
             seed: UInt64) throws -> Tensor {
        let x = batch.x
        var out = Tensor(zeros: x.shape)
        try batch.parallel.withDropoutRows(model, total: batch.size, rows: Array(batch.local)) {
            try x.data.withUnsafeBufferPointer { xp in
                try out.data.withUnsafeMutableBufferPointer { op in
                    try AttackEngine.run(model: model, images: xp.baseAddress!, n: x.batch,
                                         objective: CodeProductObjective(codes: codes, direction),
                                         config: config(seed: seed), out: op.baseAddress!, chunk: max(1, x.batch),
                                         firstIndex: batch.local.lowerBound)
                }
            }
        }
        return out
    }
}
