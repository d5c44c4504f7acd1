/// A training recipe's registry entry: clean hashing training ("hashing") or an adversarial-
/// training defence ("saat", "cgat", "atrdh"). Its schema holds every hyper-parameter, those of
/// the epoch loop (`TrainingParameters`) included; `lossConstants` names the official code whose
/// hashing-loss constants it trains with (`LossSpec.constants`: CgAT's for "cgat", SAAT's for the
/// others); `make` builds the method for a model, its hashing loss and the training labels.
public struct TrainingSpec: Sendable {
    public let schema: Schema
    public let lossConstants: LossConstants
    public let make: @Sendable (_ model: HashingModel, _ loss: HashingLoss, _ trainLabels: Tensor,
                                _ settings: Settings) throws -> TrainingMethod

    public init(schema: Schema, lossConstants: LossConstants,
                make: @escaping @Sendable (HashingModel, HashingLoss, Tensor, Settings) throws -> TrainingMethod) {
        self.schema = schema; self.lossConstants = lossConstants; self.make = make
    }

    /// The hashing loss of a run of this recipe: the `loss` setting with the recipe's
    /// `lossConstants` (a loss with a `seed` gets the run's seed).
    public func makeLoss(bits: Int, trainLabels: Tensor, settings: Settings) throws -> HashingLoss {
        try makeHashingLoss(name: settings.string("loss"), bits: bits, trainLabels: trainLabels,
                            seed: UInt64(settings.int("seed")), constants: lossConstants)
    }

    /// The method, its hashing loss (`makeLoss`) and the epoch loop over `images` and `labels`
    /// (N×C, 0/1), all from `settings`.
    public func makeLoop(model: HashingModel, images: ImageSource, labels: Tensor, settings: Settings) throws -> TrainingLoop {
        try require(images.count >= 1, "images", "at least one training image (got an empty batch)")
        try require(labels.rank == 2 && labels.batch == images.count && labels.shape[1] >= 1, "labels",
                    "\(images.count) rows (one per image) of C >= 1 classes, got shape \(labels.shape)")
        try LabelSet.requireBinary(labels, "labels")
        let seed = UInt64(settings.int("seed"))
        let loss = try makeLoss(bits: model.bits, trainLabels: labels, settings: settings)
        let method = try make(model, loss, labels, settings)
        // A batch larger than the set is one batch of the whole set; its activations, their
        // gradients and an adversarial copy must fit in memory (a failed allocation would abort).
        let batchSize = min(settings.int("batch_size"), images.count)
        let fits = HashingModel.physicalMemoryBytes / (4 * max(1, model.activationBytesPerImage))
        try require(batchSize <= max(1, fits), "batch_size",
                    "at most \(max(1, fits)) images of a \(model.backbone.rawValue) model per batch on this machine's memory, got \(batchSize)")
        let perEpoch = (images.count + batchSize - 1) / batchSize
        let epochs = settings.int("epochs")
        let (total, overflow) = epochs.multipliedReportingOverflow(by: perEpoch)
        try require(!overflow && total <= 1 << 53, "epochs", "at most \((1 << 53) / perEpoch) epochs of \(perEpoch) batches, got \(epochs)")
        return try TrainingLoop(method: method, images: images, labels: labels, epochs: epochs, batchSize: batchSize,
                                learningRate: settings.float("lr"), milestones: settings.fractions("milestones"),
                                gamma: settings.float("gamma"), seed: seed)
    }
}

/// Parameters the training recipes share, declared once (each recipe picks its defaults).
public enum TrainingParameters {
    public static func loss(_ v: String = "dpsh") -> Parameter {
        .choice("loss", v, Registry.losses.map(\.schema.name), "hashing loss of the model's outputs")
    }
    public static func epochs(_ v: Int) -> Parameter { .int("epochs", v, 1...Int(Int32.max), "passes over the training set") }
    public static func batchSize(_ v: Int) -> Parameter {
        .int("batch_size", v, 1...(1 << 24), "images per batch (the last batch of an epoch may be smaller)")
    }
    public static func lr(_ v: Double) -> Parameter { .float("lr", v, min: 0, lowerOpen: true, "learning rate") }
    public static func momentum(_ v: Double) -> Parameter { .float("momentum", v, min: 0, max: 1, upperOpen: true, "SGD momentum") }
    public static func weightDecay(_ v: Double) -> Parameter { .float("weight_decay", v, min: 0, "L2 weight decay") }
    public static func milestones(_ v: [Double]) -> Parameter {
        .fractions("milestones", v, "fractions of the iterations at which the learning rate is multiplied by gamma")
    }
    public static let gamma = Parameter.float("gamma", 0.1, min: 0, max: 1, lowerOpen: true, "learning-rate factor at each milestone")
    public static let seed = Parameter.int("seed", 0, 0...Int.max, "shuffling seed (and every other random choice of the run)")
    /// The inner attack of adversarial training (steps bounded: a batch's attack runs without a
    /// Ctrl-C check, between batches).
    public static let innerEps = AttackParameters.eps(8.0 / 255)
    public static let innerStep = AttackParameters.step(2.0 / 255)
    public static let innerSteps = Parameter.int("steps", 7, 1...1000, "iterations of the inner PGD attack per batch")

    /// The inner attack from the `eps`, `step` and `steps` settings.
    static func inner(_ s: Settings) -> InnerAttack {
        InnerAttack(eps: s.float("eps"), step: s.float("step"), steps: s.int("steps"))
    }
}
