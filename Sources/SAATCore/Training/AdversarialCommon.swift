/// Pieces shared by the adversarial-training methods (SAAT, CgAT, ATRDH).
enum AdversarialCommon {
    /// F(x) (N×K, α = 1) of the whole training set in eval mode (deterministic): the starting
    /// model's outputs, from which the methods' initial codes and memories are made (the initial
    /// "benign" codes U_ben = sign F(x) of SAAT/CgAT's `adv_training.py` / `central_adv_train.py`
    /// and ATRDH's, ATRDH's hashing-loss memory).
    ///
    /// Data-parallel: each process encodes its contiguous share of the images
    /// (`DataParallel.localRows`) and the shares are gathered, so every process holds the same
    /// bits whatever its CPU (and, an image's outputs not depending on the other images computed
    /// with it, the bits one process would compute). The processes agree first whether one of
    /// them was stopped (`shouldStop`), so none is left waiting in the gather: the stopped one
    /// throws `interrupted`, the others `peerStopped` (batch −1: before the first batch).
    static func encodeOutputs(model: HashingModel, images: ImageSource, parallel: DataParallel,
                              shouldStop: () -> Bool) throws -> Tensor {
        let saved = model.mode
        model.mode = .eval
        defer { model.mode = saved }
        let rows = parallel.localRows(images.count)
        var mine = Tensor(zeros: [rows.count, model.bits])
        var stopped = false
        if !rows.isEmpty {
            do {
                try mine.data.withUnsafeMutableBufferPointer {
                    try model.predict(images: images.base + rows.lowerBound * images.itemSize, n: rows.count,
                                      out: $0.baseAddress!, shouldStop: shouldStop)
                }
            } catch SAATError.interrupted {
                stopped = true
            }
        }
        if try parallel.anyStops(stopped) {
            throw stopped ? SAATError.interrupted : SAATError.peerStopped(epoch: 0, batch: -1)
        }
        return try parallel.gather(mine, batch: images.count)
    }

    /// sign(u) (0 → +1) element-wise.
    static func signs(_ u: Tensor) -> Tensor {
        var c = u
        for i in 0..<c.count { c.data[i] = c.data[i] >= 0 ? 1 : -1 }
        return c
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
