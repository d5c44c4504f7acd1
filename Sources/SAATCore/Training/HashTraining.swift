/// Clean deep-hashing training: minimise a hashing loss (DPSH by default) of F(x) with SGD.
///
/// Per batch (SAAT `hashing.py`, CgAT `hashing.py`): u = F(x) in train mode; (L, ∂L/∂u) from the
/// loss, which first writes u into its memory U at the batch indices; backward; SGD step.
/// HashNet trains through tanh(β·g) with its continuation scale β (evaluation uses β = 1).
/// Defaults follow the official code: SGD lr 0.01, momentum 0.9, weight decay 5e-4, lr × 0.1 at
/// 1/3 and 2/3 of the run.
public final class HashTraining: TrainingMethod {
    public static let spec = TrainingSpec(schema: Schema(
        .training, "hashing", python: "train",
        summary: "Clean deep-hashing training: a hashing loss of F(x), SGD with momentum and weight decay, multi-step schedule.",
        parameters: [TrainingParameters.loss(), TrainingParameters.epochs(10), TrainingParameters.batchSize(32),
                     TrainingParameters.lr(0.01), TrainingParameters.momentum(0.9), TrainingParameters.weightDecay(5e-4),
                     TrainingParameters.milestones([1.0 / 3, 2.0 / 3]), TrainingParameters.gamma, TrainingParameters.seed]),
        lossConstants: .saat   // SAAT hashing.py trains with the hashing model's own loss_function
    ) { model, loss, _, s in
        HashTraining(model: model, loss: loss, optimizer: try SGD(params: model.params, learningRate: s.float("lr"),
                                                                  momentum: s.float("momentum"), weightDecay: s.float("weight_decay")))
    }

    public let model: HashingModel
    public let loss: HashingLoss
    public let optimizer: Optimizer

    public init(model: HashingModel, loss: HashingLoss, optimizer: Optimizer) {
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
    }

    public func prepare(images: ImageSource, parallel: DataParallel, shouldStop: () -> Bool) throws {}

    public var lossMemory: Tensor? { loss.memory }

    public func beginEpoch(_ epoch: Int) { loss.beginEpoch(epoch) }

    public func step(_ batch: TrainingBatch) throws -> Double {
        // HashNet's continuation (β grows every 200 iterations); every other loss uses β = 1.
        let scale = loss.nextTrainingScale()
        let mine = batch.parallel.withDropoutRows(model, total: batch.size, rows: Array(batch.local)) {
            model.forward(batch.x, alpha: scale)
        }
        let u = try batch.gathered(mine)
        let (l, g) = loss.lossAndGradient(u: u, labels: batch.labels, indices: batch.indices)
        model.zeroGrad()
        _ = model.backward(batch.mine(g), paramGrads: true)
        try batch.parallel.sumGradients(model.params)
        optimizer.step()
        return l
    }

    public func saveState() -> [String: Tensor] {
        var s = loss.saveState().reduce(into: [String: Tensor]()) { $0["loss/\($1.key)"] = $1.value }
        s["memory"] = loss.memory
        return s
    }

    public func loadState(_ state: [String: Tensor]) throws {
        guard let m = state["memory"], m.shape == loss.memory.shape else {
            throw SAATError.corrupt("checkpoint", "hashing-loss memory missing or of the wrong shape")
        }
        loss.memory = m
        var ls: [String: Tensor] = [:]
        for (k, v) in state where k.hasPrefix("loss/") { ls[String(k.dropFirst(5))] = v }
        try loss.loadState(ls)
    }
}
