/// ATRDH, the targeted adversarial training of "Targeted Attack and Defense for Deep Hashing"
/// (Wang et al., SIGIR 2021), as re-implemented in SAAT `model/defense_model/atrdh.py`
/// (github.com/xandery-geek/SAAT @3743e69).
///
/// Start (atrdh.py:54,74-77): the model is the clean one; `codes` ← sign(F(x)) of the training
/// set in eval mode (`generate_code_ordered` on the model `load_model` left in eval mode);
/// U_ben ← 0; the hashing loss keeps the memory U it had after clean training (the whole clean
/// model object, its `U` and `Y` included, is what the checkpoint holds, and atrdh.py never resets
/// them). Here the loss memory U starts as F(x) of the training set, the starting model's
/// continuous outputs in eval mode (`prepare`): the clean run's memory itself is not part of a
/// model (it held each item's train-mode output, dropout on, from its last clean batch).
/// Per batch (x, y, idx):
///   o_ben = F(x); codes[idx] ← sign(o_ben)
///   p = P(y_t) for random unique training label vectors y_t sharing no class with y (when one
///     exists), taken *before* P's update of this batch (atrdh.py:97,107: the attack's target is
///     the `batch_target_code` computed before `pnet_optimizer.step()`)
///   one Adam step of P on random unique training label vectors (circle loss against `codes`)
///   x' = PGD-7 (ε 8/255, step 2/255, random start) maximising mean(F(x') ⊙ sign(p))
///   U_ben[idx] ← o_ben
///   loss = L_hash(o_ben, y, idx) + 2·Σ_{i,j}(F(x'_i)ᵀU_ben,j / K − S̃_ij)² / (N·B),  S̃ = 2·[y_iᵀL_j > 0] − 1
///   one Adam step of the model (lr 1e-4, β = (0.5, 0.999)); lr × 0.1 at 50 %/75 %, for P's Adam
///   too (atrdh.py:66-72,104,126: both schedulers have the same milestones and step every batch).
/// Deviations (documented): the loss memory's start (above); the target labels come from the
/// training labels (the training set is a subset of the database) and avoid y's classes, and
/// P's update uses another draw of labels (the official code draws one set of database labels
/// for both, with no overlap rule).
public final class ATRDHTraining: TrainingMethod {
    public static let spec = TrainingSpec(schema: Schema(
        .defence, "atrdh", python: "ATRDH",
        summary: "ATRDH (Wang et al., SIGIR 2021): targeted adversarial training with a label → code prototype net, Adam.",
        parameters: [TrainingParameters.loss(), TrainingParameters.epochs(100), TrainingParameters.batchSize(32),
                     .float("lr", 1e-4, min: 0, lowerOpen: true, "Adam learning rate of the model and of the prototype net"),
                     .float("adv_weight", 2, min: 0, "weight of the adversarial term Σ(F(x')ᵀU_j/K − S̃_ij)²/(N·B)"),
                     TrainingParameters.innerEps, TrainingParameters.innerStep, TrainingParameters.innerSteps,
                     TrainingParameters.milestones([0.5, 0.75]), TrainingParameters.gamma, TrainingParameters.seed]),
        lossConstants: .saat   // atrdh.py:116 uses the loaded SAAT model's loss_function
    ) { model, loss, labels, s in
        try ATRDHTraining(model: model, loss: loss, trainLabels: labels, lr: s.float("lr"), advWeight: s.float("adv_weight"),
                          inner: TrainingParameters.inner(s), seed: UInt64(s.int("seed")))
    }

    public let model: HashingModel
    public let loss: HashingLoss
    public let optimizer: Optimizer
    public let prototype: PrototypeNet
    public let inner: InnerAttack
    public let trainLabels: Tensor
    public let advWeight: Float
    private(set) var benign: Tensor  // U_ben, continuous, zero at start (atrdh.py:77)
    private(set) var codes: Tensor   // sign codes P trains against
    private var rng: SeededRNG
    private var uniqueLabels: [[Float]] = []

    /// The settings come from `spec`'s schema (lr 1e-4, adv_weight 2 by default).
    public init(model: HashingModel, loss: HashingLoss, trainLabels: Tensor, lr: Float,
                advWeight: Float, inner: InnerAttack, seed: UInt64) throws {
        self.model = model
        self.loss = loss
        self.optimizer = try Adam(params: model.params, learningRate: lr, beta1: 0.5, beta2: 0.999)
        self.prototype = try PrototypeNet(classes: trainLabels.shape[1], bits: model.bits, seed: seed, learningRate: lr)
        self.inner = inner
        self.trainLabels = trainLabels
        self.advWeight = advWeight
        self.benign = Tensor(zeros: [trainLabels.batch, model.bits])
        self.codes = benign
        self.rng = SeededRNG(seed: seed &+ 0xA7D0_0000)
        self.uniqueLabels = LabelSet.uniqueRows(trainLabels)
    }

    /// codes ← sign(F(x)) and the hashing-loss memory U ← F(x) of the training set (eval mode);
    /// U_ben stays zero. See the type's doc.
    public func prepare(images: ImageSource, parallel: DataParallel, shouldStop: () -> Bool) throws {
        let outputs = try AdversarialCommon.encodeOutputs(model: model, images: images, parallel: parallel,
                                                          shouldStop: shouldStop)
        codes = AdversarialCommon.signs(outputs)
        loss.memory = outputs
    }

    public func beginEpoch(_ epoch: Int) { loss.beginEpoch(epoch) }

    /// B random unique label vectors; with `avoiding`, each shares no class with its row when possible.
    func sampleLabels(_ b: Int, avoiding y: Tensor? = nil) -> Tensor {
        let c = trainLabels.shape[1]
        var out = Tensor(zeros: [b, c])
        for i in 0..<b {
            var pick = uniqueLabels[rng.below(uniqueLabels.count)]
            if let y {
                for _ in 0..<20 {
                    var overlap = false
                    for t in 0..<c where pick[t] > 0 && y.data[i * c + t] > 0 { overlap = true }
                    if !overlap { break }
                    pick = uniqueLabels[rng.below(uniqueLabels.count)]
                }
            }
            for t in 0..<c { out.data[i * c + t] = pick[t] }
        }
        return out
    }

    /// The target codes sign(P(y_t)) of `targets`, encoded before P's update of the batch, then
    /// that update: one Adam step of P on `trainOn` against the current `codes`, at the model's
    /// scheduled learning rate (the loop sets it before every step; P shares base and milestones).
    func prototypeStep(trainOn: Tensor, targets: Tensor) -> Tensor {
        let target = prototype.codes(targets)
        prototype.optimizer.learningRate = optimizer.learningRate
        prototype.trainStep(y: trainOn, trainCodes: codes, trainLabels: trainLabels)
        return target
    }

    public func step(_ batch: TrainingBatch) throws -> Double {
        let labels = batch.labels, indices = batch.indices, x = batch.x
        let b = batch.size, k = model.bits, n = trainLabels.batch, mine = x.batch
        let dp = batch.parallel
        // Benign outputs first (they update the codes the prototype net learns from).
        let oBen0 = try batch.gathered(dp.withDropoutRows(model, total: b, rows: Array(batch.local)) { model.forward(x) })
        AdversarialCommon.setRows(&codes, indices, signOf: oBen0)
        let trainOn = sampleLabels(b)
        let target = prototypeStep(trainOn: trainOn, targets: sampleLabels(b, avoiding: labels))
        let xAdv = try inner.run(model: model, batch: batch, codes: batch.mine(target), .towards, seed: rng.next())
        let out = dp.withDropoutRows(model, total: 2 * b, rows: batch.stackedRows) {
            model.forward(AdversarialCommon.stack(xAdv, x))
        }
        let oAdv = try batch.gathered(out.slice(0, mine)), oBen = try batch.gathered(out.slice(mine, mine))
        for (r, i) in indices.enumerated() {
            for t in 0..<k { benign.data[i * k + t] = oBen.data[r * k + t] }
        }
        let (lHash, gBen) = loss.lossAndGradient(u: oBen, labels: labels, indices: indices)
        // R = F(x')·U_benᵀ/K − S̃ (B×N); L_adv = w·ΣR²/(N·B); ∂/∂F(x') = 2w/(N·B)·R·U_ben/K.
        var r = Tensor.matmul(oAdv, benign, transB: true, alpha: 1 / Float(k))
        let s = LabelSet.overlaps(labels, trainLabels)
        var adv = 0.0
        for i in 0..<(b * n) {
            let st: Float = s.data[i] > 0 ? 1 : -1
            r.data[i] -= st
            adv += Double(r.data[i] * r.data[i])
        }
        let scale = advWeight / Float(n * b)
        let gAdv = Tensor.matmul(r, benign, alpha: 2 * scale / Float(k))
        model.zeroGrad()
        _ = model.backward(AdversarialCommon.stack(batch.mine(gAdv), batch.mine(gBen)), paramGrads: true)
        try dp.sumGradients(model.params)
        optimizer.step()
        return lHash + Double(scale) * adv
    }

    public func saveState() -> [String: Tensor] {
        var s = loss.saveState().reduce(into: [String: Tensor]()) { $0["loss/\($1.key)"] = $1.value }
        for (k, v) in prototype.saveState() { s["prototype/\(k)"] = v }
        s["memory"] = loss.memory
        s["benign"] = benign
        s["codes"] = codes
        s["rng"] = wordsTensor(rng.stateWords)
        return s
    }

    public func loadState(_ state: [String: Tensor]) throws {
        guard let m = state["memory"], m.shape == loss.memory.shape, let bn = state["benign"], bn.shape == benign.shape,
              let cd = state["codes"], cd.shape == codes.shape, let r = state["rng"] else {
            throw SAATError.corrupt("checkpoint", "ATRDH state missing or mis-shaped")
        }
        loss.memory = m; benign = bn; codes = cd
        rng = SeededRNG(state: try words(r))
        var ls: [String: Tensor] = [:], ps: [String: Tensor] = [:]
        for (k, v) in state {
            if k.hasPrefix("loss/") { ls[String(k.dropFirst(5))] = v }
            if k.hasPrefix("prototype/") { ps[String(k.dropFirst(10))] = v }
        }
        try loss.loadState(ls)
        try prototype.loadState(ps)
    }
}
