/// Code-guided minimax adversarial training, the loop SAAT and CgAT share (they differ in the
/// guide code and constants; see `SAATTraining` and `CgATTraining` for the papers' settings).
///
/// Init: U_ben ← sign(F(x)) of the training set, hashing-loss memory U ← U_ben. Per batch
/// (x, y, idx):
///   b  = code(y, U_ben, L_tr);  x' = PGD(x, b) (ε 8/255, step 2/255, 7 steps, random start, α = 1)
///   o_adv = F(x'); o_ben = F(x); U_ben[idx] = sign(o_ben); b2 = code(y, U_ben, L_tr)
///   loss = L_hash(o_ben, y, idx) + λ·(−mean(o_adv ⊙ b2)) + μ·mean((o_adv − sign(o_adv))²)
/// then one optimiser step. x' and x go through one stacked forward/backward pass.
public final class GuidedAdversarialTraining: TrainingMethod {
    public let model: HashingModel
    public let loss: HashingLoss
    public let optimizer: Optimizer
    public let lambda: Float
    public let mu: Float
    public let inner: InnerAttack
    public let trainLabels: Tensor
    public private(set) var benignCodes: Tensor
    private var attackSeed: UInt64
    /// Which semantic code guides the method (mainstay for SAAT; CgAT overrides via `center`).
    let codeKind: SemanticCodes.Kind

    /// `lambda`, `mu` and the inner attack's settings come from the recipes' schemas (`recipe`).
    public init(model: HashingModel, loss: HashingLoss, optimizer: Optimizer, trainLabels: Tensor,
                lambda: Float, mu: Float, inner: InnerAttack, seed: UInt64, codeKind: SemanticCodes.Kind) {
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.lambda = lambda
        self.mu = mu
        self.inner = inner
        self.trainLabels = trainLabels
        self.benignCodes = Tensor(zeros: [trainLabels.batch, model.bits])
        self.attackSeed = seed &+ 0xA77A_C000
        self.codeKind = codeKind
    }

    public func prepare(images: ImageSource, parallel: DataParallel, shouldStop: () -> Bool) throws {
        benignCodes = AdversarialCommon.signs(try AdversarialCommon.encodeOutputs(model: model, images: images, parallel: parallel,
                                                                                  shouldStop: shouldStop))
        loss.memory = benignCodes
    }

    public func beginEpoch(_ epoch: Int) { loss.beginEpoch(epoch) }

    public func step(_ batch: TrainingBatch) throws -> Double {
        let labels = batch.labels, indices = batch.indices, x = batch.x
        let b = batch.size, k = model.bits, mine = x.batch
        let guide = try SemanticCodes.compute(codeKind, labels: labels, trainCodes: benignCodes, trainLabels: trainLabels)
        attackSeed = attackSeed &+ 1
        let xAdv = try inner.run(model: model, batch: batch, codes: batch.mine(guide), .away, seed: attackSeed)
        // One pass over [x'; x] (this process's rows of both).
        let out = batch.parallel.withDropoutRows(model, total: 2 * b, rows: batch.stackedRows) {
            model.forward(AdversarialCommon.stack(xAdv, x))
        }
        let oAdv = try batch.gathered(out.slice(0, mine)), oBen = try batch.gathered(out.slice(mine, mine))
        AdversarialCommon.setRows(&benignCodes, indices, signOf: oBen)
        let guide2 = try SemanticCodes.compute(codeKind, labels: labels, trainCodes: benignCodes, trainLabels: trainLabels)
        let (lHash, gBen) = loss.lossAndGradient(u: oBen, labels: labels, indices: indices)
        // Adversarial terms on o_adv.
        var gAdv = Tensor(zeros: [b, k])
        var adv = 0.0, quant = 0.0
        let cnt = Float(b * k)
        for i in 0..<(b * k) {
            let o = oAdv.data[i], c = guide2.data[i]
            let s: Float = o > 0 ? 1 : (o < 0 ? -1 : 0)
            adv += Double(o * c)
            quant += Double((o - s) * (o - s))
            gAdv.data[i] = -lambda * c / cnt + mu * 2 * (o - s) / cnt
        }
        let total = lHash - Double(lambda) * adv / Double(cnt) + Double(mu) * quant / Double(cnt)
        model.zeroGrad()
        _ = model.backward(AdversarialCommon.stack(batch.mine(gAdv), batch.mine(gBen)), paramGrads: true)
        try batch.parallel.sumGradients(model.params)
        optimizer.step()
        return total
    }

    public func saveState() -> [String: Tensor] {
        var s = loss.saveState().reduce(into: [String: Tensor]()) { $0["loss/\($1.key)"] = $1.value }
        s["memory"] = loss.memory
        s["benign_codes"] = benignCodes
        s["attack_seed"] = wordsTensor([attackSeed])
        return s
    }

    public func loadState(_ state: [String: Tensor]) throws {
        guard let m = state["memory"], m.shape == loss.memory.shape,
              let bc = state["benign_codes"], bc.shape == benignCodes.shape,
              let sd = state["attack_seed"] else {
            throw SAATError.corrupt("checkpoint", "adversarial-training state (memory, benign_codes, attack_seed) missing or mis-shaped")
        }
        loss.memory = m
        benignCodes = bc
        attackSeed = try words(sd)[0]
        var ls: [String: Tensor] = [:]
        for (k, v) in state where k.hasPrefix("loss/") { ls[String(k.dropFirst(5))] = v }
        try loss.loadState(ls)
    }
}

extension GuidedAdversarialTraining {
    /// The registry entry of a code-guided recipe (SAAT, CgAT): the epoch loop's parameters with
    /// the paper's defaults, the adversarial weights `weights` (λ as `lambda_adv`, and SAAT's μ as
    /// `mu`; a recipe without `mu` has no quantisation term), the inner attack, SGD, and the
    /// official code whose hashing-loss constants it uses.
    static func recipe(_ name: String, python: String, summary: String, codeKind: SemanticCodes.Kind, epochs: Int,
                       lr: Double, momentum: Double, weightDecay: Double, weights: [Parameter],
                       lossConstants: LossConstants) -> TrainingSpec {
        let schema = Schema(
            .defence, name, python: python, summary: summary,
            parameters: [TrainingParameters.loss(), TrainingParameters.epochs(epochs), TrainingParameters.batchSize(32),
                         TrainingParameters.lr(lr), TrainingParameters.momentum(momentum),
                         TrainingParameters.weightDecay(weightDecay)] + weights
                + [TrainingParameters.innerEps, TrainingParameters.innerStep, TrainingParameters.innerSteps,
                   TrainingParameters.milestones([0.5, 0.75]), TrainingParameters.gamma, TrainingParameters.seed])
        return TrainingSpec(schema: schema, lossConstants: lossConstants) { model, loss, labels, s in
            let opt = try SGD(params: model.params, learningRate: s.float("lr"), momentum: s.float("momentum"),
                              weightDecay: s.float("weight_decay"))
            return GuidedAdversarialTraining(model: model, loss: loss, optimizer: opt, trainLabels: labels,
                                             lambda: s.float("lambda_adv"), mu: s.has("mu") ? s.float("mu") : 0,
                                             inner: TrainingParameters.inner(s), seed: UInt64(s.int("seed")),
                                             codeKind: codeKind)
        }
    }
}
