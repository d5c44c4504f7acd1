import HashKernels

/// ProS-GAN, the generative targeted attack of "Prototype-supervised Adversarial Network for
/// Targeted Attack of Deep Hashing" (Wang et al., CVPR 2021; official code
/// xunguangwang/ProS-GAN, `model/target_attack_gan.py`). Unlike the iterative attacks it is a
/// trained network: `fit` trains it against a frozen hashing model F (eval mode), then
/// `generate` maps an image and a target label to an adversarial image in one forward pass.
///
/// Training (`fit`, through `TrainingLoop`):
/// 1. `prepare`: the prototype net P (`ProSGANPrototypeNet`) is trained for `prototype_steps`
///    Adam steps of `prototype_batch` target label rows drawn at random from the unique label rows
///    of the training set, against the training codes (lr × 0.1 at 50 % and 75 % of the steps, as
///    the official MultiStepLR). The official code draws them from the database's unique label
///    rows; the training set is a subset of the database, so these are a subset of those.
/// 2. Each batch of B training images x ∈ [0, 1] with labels y: B target rows y_t are drawn (from
///    the stream (seed, iteration), so a resumed run draws the same), f = P.feature(y_t),
///    h_t = sign(P.hash(y_t)) (0 → +1; torch.sign gives 0 there), x' = G(x, f) ∈ (−1, 1)
///    (`ProSGANGenerator`), x̃ = 2x − 1.
/// 3. Every 3rd batch of an epoch (batch index ≡ 0 mod 3) the discriminator D
///    (`ProSGANDiscriminator`) takes one Adam step on
///    L_D = ½·[MSE(D(x̃), [y, 0]) + MSE(D(x'), [y_t, 1])] (LSGAN; the official `GANLoss` labels
///    real as 0 and fake as 1).
/// 4. The generator takes one Adam step on
///    L_G = w_rec·MSE(x', x̃) + 5·(1 − mean(F((x' + 1)/2) ⊙ h_t)) + MSE(D(x'), [y_t, 0]).
/// Both Adam (lr, β 0.5, 0.999) rates follow the official 'linear' policy: constant for the first
/// epochs − ⌊epochs/2⌋ epochs, then linear decay over the other ⌊epochs/2⌋ (the official 50 + 50).
///
/// Attack (`generate`): x_adv = (G(x, P.feature(y_t)) + 1)/2 ∈ [0, 1]; there is no ε-ball, the
/// reconstruction weight w_rec alone governs how visible the perturbation is (the paper reports
/// its perceptibility √(mean over images of MSE(x, x_adv)) in [0, 1] pixel units).
public final class ProSGAN: TrainingMethod {
    public static let schema = Schema(
        .generative, "prosgan", python: "ProSGAN",
        summary: "ProS-GAN (Wang et al., CVPR 2021): a generator trained to map an image and a target label to an adversarial image.",
        inputs: [AttackParameters.trainCodes, AttackParameters.trainLabels],
        parameters: [TrainingParameters.epochs(100), TrainingParameters.batchSize(24), TrainingParameters.lr(1e-4),
                     .float("rec_weight", 100, min: 0,
                            "weight of the reconstruction term MSE(G(x), x) (the paper: 100 on FLICKR-25K, 50 on NUS-WIDE and MS-COCO)"),
                     AttackParameters.prototypeSteps, AttackParameters.prototypeBatch, TrainingParameters.seed])
    /// Weights of the hashing and adversarial (GAN) terms of the generator loss, and the
    /// discriminator's update period in batches (official constants).
    public static let hashWeight: Float = 5
    public static let ganWeight: Float = 1
    public static let discriminatorEvery = 3

    public let model: HashingModel
    public let settings: Settings
    public let trainCodes: Tensor
    public let trainLabels: Tensor
    /// The unique label rows of the training set: the target labels training draws from.
    public let targetRows: [[Float]]
    public let prototype: ProSGANPrototypeNet
    public let generator: ProSGANGenerator
    public let discriminator: ProSGANDiscriminator
    let generatorOptimizer: Adam
    let discriminatorOptimizer: Adam
    public private(set) var prototypeTrained = false
    /// Whether `generate` may run: set when a `fit` finishes or a trained state is loaded.
    public private(set) var trained = false
    let seed: UInt64

    public var optimizer: Optimizer { generatorOptimizer }
    public var modelMode: Mode { .eval }
    public var classes: Int { trainLabels.shape[1] }

    public init(model: HashingModel, inputs: AttackInputs, settings: Settings) throws {
        let shape = model.inputShape
        try require(shape[0] == 3 && shape[1] == shape[2], "model",
                    "a model of square RGB images (ProS-GAN's generator), got input shape \(shape)")
        (trainCodes, trainLabels) = try inputs.trainingSet(bits: model.bits)
        self.model = model
        self.settings = settings
        seed = UInt64(settings.int("seed"))
        targetRows = LabelSet.uniqueRows(trainLabels)
        prototype = try ProSGANPrototypeNet(classes: trainLabels.shape[1], bits: model.bits, seed: seed)
        generator = try ProSGANGenerator(side: shape[1], seed: seed)
        discriminator = try ProSGANDiscriminator(side: shape[1], classes: trainLabels.shape[1], seed: seed)
        let lr = settings.float("lr")
        generatorOptimizer = try Adam(params: generator.params, learningRate: lr, beta1: 0.5, beta2: 0.999)
        discriminatorOptimizer = try Adam(params: discriminator.params, learningRate: lr, beta1: 0.5, beta2: 0.999)
    }

    // MARK: training

    /// The epoch loop of `fit` over `images` (N×3×S×S in [0, 1]) with their `labels` (N×C).
    public func makeLoop(images: ImageSource, labels: Tensor) throws -> TrainingLoop {
        try require(images.count >= 1, "images", "at least one training image (got an empty batch)")
        try require(labels.rank == 2 && labels.batch == images.count && labels.shape[1] == classes, "labels",
                    "\(images.count) rows (one per image) of \(classes) classes (as train_labels), got shape \(labels.shape)")
        try LabelSet.requireBinary(labels, "labels")
        let batch = min(settings.int("batch_size"), images.count)
        let epochs = settings.int("epochs"), perEpoch = (images.count + batch - 1) / batch
        let decay = epochs / 2
        return try TrainingLoop(method: self, images: images, labels: labels, epochs: epochs, batchSize: batch, seed: seed,
                                schedule: LinearDecaySchedule(base: settings.float("lr"), constantEpochs: epochs - decay,
                                                              decayEpochs: decay, batchesPerEpoch: perEpoch))
    }

    /// Marks the generator trained (after `TrainingLoop.run` returned).
    public func finishFit() { trained = true }

    public func prepare(images: ImageSource, parallel: DataParallel, shouldStop: () -> Bool) throws {
        try require(parallel.size == 1, "comm", "a single process: ProS-GAN training is not data-parallel")
        if !prototypeTrained { try trainPrototype(shouldStop: shouldStop) }
    }

    /// Step 1 of the type doc.
    func trainPrototype(shouldStop: () -> Bool) throws {
        let steps = settings.int("prototype_steps"), batch = settings.int("prototype_batch")
        let sched = MultiStepSchedule(base: prototype.optimizer.learningRate, fractions: [0.5, 0.75], total: steps)
        var rng = SeededRNG(seed: seed, stream: 0x9707_0000_0000)
        for s in 0..<steps {
            if s % 10 == 0 && shouldStop() { throw SAATError.interrupted }
            prototype.optimizer.learningRate = sched.rate(at: s)
            prototype.trainStep(y: drawTargets(batch, &rng), trainCodes: trainCodes, trainLabels: trainLabels)
        }
        prototypeTrained = true
    }

    /// `n` rows drawn uniformly (with replacement) from `targetRows`.
    func drawTargets(_ n: Int, _ rng: inout SeededRNG) -> Tensor {
        let c = classes
        var y = Tensor(zeros: [n, c])
        for i in 0..<n {
            let row = targetRows[rng.below(targetRows.count)]
            for t in 0..<c { y.data[i * c + t] = row[t] }
        }
        return y
    }

    public func beginEpoch(_ epoch: Int) {}

    /// LSGAN: MSE(d, [labels, flag]) over B×(C+1) and its gradient ×`weight`.
    static func lsgan(_ d: Tensor, labels: Tensor, flag: Float, weight: Float = 1) -> (Double, Tensor) {
        let b = d.shape[0], c1 = d.shape[1], c = labels.shape[1]
        var g = Tensor(zeros: d.shape)
        var s = 0.0
        let scale = 2 * weight / Float(b * c1)
        for i in 0..<b {
            for j in 0..<c1 {
                let t = j < c ? labels.data[i * c + j] : flag
                let diff = d.data[i * c1 + j] - t
                s += Double(diff) * Double(diff)
                g.data[i * c1 + j] = scale * diff
            }
        }
        return (s / Double(b * c1), g)
    }

    public func step(_ batch: TrainingBatch) throws -> Double {
        let x = batch.x, b = batch.size
        discriminatorOptimizer.learningRate = generatorOptimizer.learningRate
        var rng = SeededRNG(seed: seed, stream: 0x7A6E_0000_0000 &+ UInt64(batch.iteration))
        let yt = drawTargets(b, &rng)
        let ht = prototype.codes(yt)
        let fake = generator.forward(images: x, feature: prototype.feature(yt))
        var real = x
        for i in 0..<real.count { real.data[i] = 2 * real.data[i] - 1 }

        if batch.batchInEpoch % Self.discriminatorEvery == 0 {
            for p in discriminator.params { p.grad.zero() }
            let (_, gReal) = Self.lsgan(discriminator.forward(real), labels: batch.labels, flag: 0, weight: 0.5)
            _ = discriminator.backward(gReal, paramGrads: true)
            let (_, gFake) = Self.lsgan(discriminator.forward(fake), labels: yt, flag: 1, weight: 0.5)
            _ = discriminator.backward(gFake, paramGrads: true)
            discriminatorOptimizer.step()
        }

        for p in generator.params { p.grad.zero() }
        let (ganLoss, gD) = Self.lsgan(discriminator.forward(fake), labels: yt, flag: 0, weight: Self.ganWeight)
        var dFake = discriminator.backward(gD, paramGrads: false)
        // Reconstruction: w·mean((x' − x̃)²).
        let w = settings.float("rec_weight"), count = fake.count
        var rec = 0.0
        let recScale = 2 * w / Float(count)
        for i in 0..<count {
            let d = fake.data[i] - real.data[i]
            rec += Double(d) * Double(d)
            dFake.data[i] += recScale * d
        }
        rec /= Double(count)
        // Hashing: 5·(1 − mean(F((x' + 1)/2) ⊙ h_t)) through the frozen model.
        var adv = fake
        for i in 0..<adv.count { adv.data[i] = (adv.data[i] + 1) / 2 }
        let out = model.forward(adv)
        let k = model.bits
        var agreement = 0.0
        var gOut = Tensor(zeros: out.shape)
        let hScale = -Self.hashWeight / Float(b * k)
        for i in 0..<out.count {
            agreement += Double(out.data[i]) * Double(ht.data[i])
            gOut.data[i] = hScale * ht.data[i]
        }
        let hashLoss = 1 - agreement / Double(b * k)
        let dAdv = model.backward(gOut, paramGrads: false)
        for i in 0..<dFake.count { dFake.data[i] += dAdv.data[i] / 2 }
        generator.backward(dFake)
        generatorOptimizer.step()
        return Double(w) * rec + Double(Self.hashWeight) * hashLoss + Double(Self.ganWeight) * ganLoss
    }

    // MARK: attack

    /// Adversarial images of `n` images (n×3×S×S in [0, 1]) towards `targetLabels` (n×C) into
    /// `out`; the prototype codes sign(P.hash(y_t)) (0 → +1) into `codes` (n×K) when given.
    /// Works in chunks of `batch_size` images; an image's result does not depend on the others.
    public func generate(images: UnsafePointer<Float>, n: Int, targetLabels: Tensor, out: UnsafeMutablePointer<Float>,
                         codes: UnsafeMutablePointer<Int8>?, shouldStop: () -> Bool = { false }) throws {
        guard trained else {
            throw SAATError.invalidArgument("self", "a trained ProSGAN: call fit(images, labels) or load(path) first")
        }
        try require(targetLabels.rank == 2 && targetLabels.batch == n && targetLabels.shape[1] == classes, "labels",
                    "target labels of shape (\(n), \(classes)), got \(targetLabels.shape)")
        try LabelSet.requireBinary(targetLabels, "labels")
        let item = model.inputShape.reduce(1, *), chunk = max(1, settings.int("batch_size")), k = model.bits
        var start = 0
        while start < n {
            if shouldStop() { throw SAATError.interrupted }
            let m = min(chunk, n - start)
            let y = targetLabels.slice(start, m)
            let x = Tensor(shape: [m] + model.inputShape, copying: images + start * item)
            let g = generator.forward(images: x, feature: prototype.feature(y))
            let dst = out + start * item
            for i in 0..<g.count { dst[i] = min(1, max(0, (g.data[i] + 1) / 2)) }
            if let codes {
                let h = prototype.codes(y)
                for i in 0..<h.count { codes[start * k + i] = h.data[i] > 0 ? 1 : -1 }
            }
            start += m
        }
    }

    // MARK: state

    /// The networks' parameters (and the discriminator's spectral-norm buffers) under the official
    /// names, prefixed "prototype_net.", "generator." and "discriminator.".
    public func stateDict() -> [(String, Tensor)] {
        prototype.stateDict(prefix: "prototype_net.") + generator.stateDict(prefix: "generator.")
            + discriminator.stateDict(prefix: "discriminator.")
    }

    /// Loads a `stateDict()` (every name, no other) and marks the attack trained.
    public func loadStateDict(_ d: [String: Tensor], argument: String = "state") throws {
        let names = Set(stateDict().map(\.0))
        let unexpected = Set(d.keys).subtracting(names)
        guard unexpected.isEmpty else {
            throw SAATError.invalidArgument(argument, "only ProSGAN entries (prototype_net.*, generator.*, discriminator.*) "
                                            + "of a model with these sizes, got unexpected \(unexpected.sorted().prefix(5))")
        }
        try prototype.loadStateDict(d, prefix: "prototype_net.", argument: argument)
        try generator.loadStateDict(d, prefix: "generator.", argument: argument)
        try discriminator.loadStateDict(d, prefix: "discriminator.", argument: argument)
        prototypeTrained = true
        trained = true
    }

    public func saveState() -> [String: Tensor] {
        var s: [String: Tensor] = [:]
        for (k, v) in stateDict() { s["nets/\(k)"] = v }
        for (k, v) in discriminatorOptimizer.saveState() { s["d_adam/\(k)"] = v }
        s["prototype_trained"] = Tensor(shape: [1], data: [prototypeTrained ? 1 : 0])
        return s
    }

    public func loadState(_ state: [String: Tensor]) throws {
        var nets: [String: Tensor] = [:], adam: [String: Tensor] = [:]
        for (k, v) in state {
            if k.hasPrefix("nets/") { nets[String(k.dropFirst(5))] = v }
            if k.hasPrefix("d_adam/") { adam[String(k.dropFirst(7))] = v }
        }
        try prototype.loadStateDict(nets, prefix: "prototype_net.", argument: "resume")
        try generator.loadStateDict(nets, prefix: "generator.", argument: "resume")
        try discriminator.loadStateDict(nets, prefix: "discriminator.", argument: "resume")
        try discriminatorOptimizer.loadState(adam)
        guard let flag = state["prototype_trained"], flag.count == 1 else {
            throw SAATError.corrupt("checkpoint", "ProS-GAN state without 'prototype_trained'")
        }
        prototypeTrained = flag.data[0] == 1
    }
}
