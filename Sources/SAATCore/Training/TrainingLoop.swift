/// One training objective (clean hashing, SAAT, CgAT, ATRDH …) driven by `TrainingLoop`.
public protocol TrainingMethod: AnyObject {
    var model: HashingModel { get }
    /// The model's optimiser; the loop sets its learning rate from the schedule before each step.
    var optimizer: Optimizer { get }
    /// Called once before the first epoch of a fresh run (not on resume): e.g. encode the
    /// training set to initialise codes and the loss memory. Data-parallel (`parallel` spanning
    /// several processes), every process calls it and must end with the same state
    /// (`AdversarialCommon.encodeOutputs` splits the encoding and gathers it).
    func prepare(images: ImageSource, parallel: DataParallel, shouldStop: () -> Bool) throws
    /// Called at the start of every epoch (also on resume, when the epoch starts fresh).
    func beginEpoch(_ epoch: Int)
    /// One optimisation step on a batch; returns the loss of the whole batch (the same on every
    /// process of a data-parallel run).
    func step(_ batch: TrainingBatch) throws -> Double
    /// Method state besides the model parameters and the optimiser (memories, codes, RNGs).
    func saveState() -> [String: Tensor]
    /// The mode the model runs in during the loop: `.train` for the recipes that train it, `.eval`
    /// for a method that trains other networks against a frozen model (ProS-GAN).
    var modelMode: Mode { get }
    func loadState(_ state: [String: Tensor]) throws
    /// The hashing loss's memory of continuous training outputs (N×K) a method hands back after a
    /// run (clean training); nil for the others.
    var lossMemory: Tensor? { get }
}

extension TrainingMethod {
    public var lossMemory: Tensor? { nil }
    public var modelMode: Mode { .train }
}

/// One batch of the epoch loop, as a method's `step` sees it.
public struct TrainingBatch {
    /// This process's images of the batch: rows `local` of it (N×C×H×W; all of it in one process).
    public let x: Tensor
    /// Labels of the whole batch (B×C).
    public let labels: Tensor
    /// Training-set rows of the whole batch.
    public let indices: [Int]
    /// The rows of the batch this process computes.
    public let local: Range<Int>
    /// Gathers rows and sums gradients over the processes (no-ops in one process).
    public let parallel: DataParallel
    /// Iteration of the run (0-based, over all epochs) and position of the batch in its epoch.
    public let iteration: Int
    public let batchInEpoch: Int

    public init(x: Tensor, labels: Tensor, indices: [Int], local: Range<Int>? = nil, parallel: DataParallel = .single,
                iteration: Int = 0, batchInEpoch: Int = 0) {
        self.x = x; self.labels = labels; self.indices = indices
        self.local = local ?? 0..<indices.count
        self.parallel = parallel
        self.iteration = iteration; self.batchInEpoch = batchInEpoch
    }

    /// Number of images in the whole batch.
    public var size: Int { indices.count }
    /// Rows `local` of a whole-batch tensor.
    public func mine(_ t: Tensor) -> Tensor { parallel.size > 1 ? t.slice(local.lowerBound, local.count) : t }
    /// Every process's rows of a tensor this process has for its rows `local`.
    public func gathered(_ t: Tensor) throws -> Tensor { try parallel.gather(t, batch: size) }
    /// The rows of a stacked forward pass over [a; b] (two copies of the batch) this process holds.
    public var stackedRows: [Int] { Array(local) + local.map { $0 + size } }
}

/// What the loop reports after each batch.
public struct TrainingProgress {
    public var epoch: Int
    public var batch: Int
    public var batchesPerEpoch: Int
    public var iteration: Int
    public var loss: Double
    public var learningRate: Float
}

/// The epoch loop shared by every training method: seeded shuffling, mini-batches, the
/// learning-rate schedule (stepped per iteration; the recipes' multi-step schedule has its
/// milestones at fractions of the run),
/// progress reports after each batch, and checkpoints that resume bit-exactly.
///
/// Data-parallel: with `parallel` spanning several processes, each computes its rows of every
/// batch (`DataParallel`); all processes end with the same weights as one process would, to
/// rounding.
///
/// Resume: a checkpoint holds the model parameters, dropout RNGs, optimiser slots, method state,
/// the epoch/batch position, the shuffling RNG and the loss history; `run(resume:)` continues from
/// it and ends with the same weights as an uninterrupted run with the same seed.
public final class TrainingLoop {
    public let method: TrainingMethod
    public let images: ImageSource
    public let labels: Tensor
    public let epochs: Int
    public let batchSize: Int
    public let schedule: any LearningRateSchedule
    public let seed: UInt64
    /// The processes the batches are split over (`DataParallel.single`: this one).
    public var parallel: DataParallel = .single

    public var batchesPerEpoch: Int { (images.count + batchSize - 1) / batchSize }
    public var totalIterations: Int { epochs * batchesPerEpoch }

    /// The multi-step schedule of the recipes: `learningRate` × `gamma` at each milestone
    /// (fractions of the run's iterations).
    public convenience init(method: TrainingMethod, images: ImageSource, labels: Tensor, epochs: Int, batchSize: Int,
                            learningRate: Float, milestones: [Double], gamma: Float = 0.1, seed: UInt64) throws {
        try require(milestones.allSatisfy { $0 > 0 && $0 < 1 }, "milestones", "fractions of the run in (0, 1)")
        try require(gamma.isFinite && gamma > 0 && gamma <= 1, "gamma", "a factor in (0, 1], got \(gamma)")
        try require(batchSize >= 1, "batch_size", "an int ≥ 1, got \(batchSize)")
        let perEpoch = (images.count + batchSize - 1) / batchSize
        try self.init(method: method, images: images, labels: labels, epochs: epochs, batchSize: batchSize, seed: seed,
                      schedule: MultiStepSchedule(base: learningRate, fractions: milestones, total: epochs * perEpoch, gamma: gamma))
    }

    public init(method: TrainingMethod, images: ImageSource, labels: Tensor, epochs: Int, batchSize: Int, seed: UInt64,
                schedule: any LearningRateSchedule) throws {
        try require(images.count >= 1, "images", "at least one training image")
        try require(labels.rank == 2 && labels.batch == images.count, "labels",
                    "one label row per image (\(images.count)), got shape \(labels.shape)")
        try require(epochs >= 1, "epochs", "an int ≥ 1, got \(epochs)")
        try require(batchSize >= 1, "batch_size", "an int ≥ 1, got \(batchSize)")
        self.method = method
        self.images = images
        self.labels = labels
        self.epochs = epochs
        self.batchSize = batchSize
        self.seed = seed
        self.schedule = schedule
    }

    /// Runs (or resumes) training. `shouldStop` is polled during long preparation work (e.g.
    /// encoding the training set); `progress` is called after every batch and returns false to
    /// stop (the loop then throws `SAATError.interrupted`, leaving the model as of that batch).
    /// `checkpoint` receives the full state every `checkpointEvery` batches (0 = never) and at the
    /// end of each epoch when `checkpointEvery` > 0; it returns false to stop.
    /// Returns the mean loss of every epoch.
    public func run(resume: [String: Tensor]? = nil,
                    checkpointEvery: Int = 0,
                    shouldStop: () -> Bool = { false },
                    progress: (TrainingProgress) -> Bool = { _ in true },
                    checkpoint: ([String: Tensor]) -> Bool = { _ in true }) throws -> [Double] {
        var history: [Double] = []
        var epoch = 0, startBatch = 0
        var shuffleRNG = SeededRNG(seed: seed &+ 0x5EED_0001)
        var epochLossSum = 0.0
        let model = method.model
        let savedMode = model.mode
        defer { model.mode = savedMode }
        model.mode = method.modelMode

        if let st = resume {
            // Whatever is wrong with the state (incomplete, inconsistent, non-finite weights) is
            // wrong with the argument it came from.
            do {
                try restore(st, epoch: &epoch, batch: &startBatch, rng: &shuffleRNG, history: &history, lossSum: &epochLossSum)
            } catch let SAATError.corrupt(what, reason) {
                throw SAATError.invalidArgument("resume", "a complete checkpoint of this run (\(what): \(reason))")
            } catch let SAATError.invalidArgument(name, expected) where name != "resume" {
                throw SAATError.invalidArgument("resume", "a checkpoint whose \(name) is \(expected)")
            }
        } else {
            try model.requireFiniteWeights()   // a diverged model cannot train on; a resume replaces its weights
            try method.prepare(images: images, parallel: parallel, shouldStop: shouldStop)
        }
        let nb = batchesPerEpoch
        while epoch < epochs {
            // The permutation of an epoch is drawn from the RNG state at the epoch's start, which
            // is what a checkpoint stores, so a resumed epoch sees the same order.
            let epochRNG = shuffleRNG
            var rng = epochRNG
            let perm = rng.permutation(images.count)
            if startBatch == 0 { method.beginEpoch(epoch); epochLossSum = 0 }
            for b in startBatch..<nb {
                let idx = Array(perm[(b * batchSize)..<min(images.count, (b + 1) * batchSize)])
                let iteration = epoch * nb + b
                method.optimizer.learningRate = schedule.rate(at: iteration)
                let local = parallel.localRows(idx.count)
                let x = images.batch(parallel.size > 1 ? Array(idx[local]) : idx)
                let y = labels.rows(idx)
                let loss = try method.step(TrainingBatch(x: x, labels: y, indices: idx, local: local, parallel: parallel,
                                                         iteration: iteration, batchInEpoch: b))
                if !loss.isFinite {
                    model.checkWeightsAfterDivergence()
                    throw SAATError.diverged(loss: loss, epoch: epoch, batch: b)
                }
                epochLossSum += loss * Double(idx.count)
                let done = b + 1
                var stop = !progress(TrainingProgress(epoch: epoch, batch: b, batchesPerEpoch: nb, iteration: iteration,
                                                      loss: loss, learningRate: method.optimizer.learningRate))
                if checkpointEvery > 0 && (done % checkpointEvery == 0 || done == nb) {
                    // Position after this batch; an epoch that just ended resumes at the next one.
                    let endOfEpoch = done == nb
                    var h = history
                    if endOfEpoch { h.append(epochLossSum / Double(images.count)) }
                    let st = snapshot(epoch: endOfEpoch ? epoch + 1 : epoch, batch: endOfEpoch ? 0 : done,
                                      rng: endOfEpoch ? rng : epochRNG, history: h, lossSum: endOfEpoch ? 0 : epochLossSum)
                    if !checkpoint(st) { stop = true }
                }
                // Data-parallel: the processes agree after every batch whether to stop, so one that
                // stops (Ctrl-C, a callback's False or error) never leaves the others waiting.
                if parallel.size > 1, try parallel.anyStops(stop), !stop {
                    throw SAATError.peerStopped(epoch: epoch, batch: b)
                }
                if stop { throw SAATError.interrupted }
            }
            history.append(epochLossSum / Double(images.count))
            shuffleRNG = rng
            startBatch = 0
            epoch += 1
        }
        return history
    }

    /// Full training state as named tensors.
    public func snapshot(epoch: Int, batch: Int, rng: SeededRNG, history: [Double], lossSum: Double) -> [String: Tensor] {
        var st: [String: Tensor] = [:]
        for (name, t) in method.model.stateDict() { st["model/\(name)"] = t }
        for (k, v) in method.optimizer.saveState() { st["optim/\(k)"] = v }
        for (k, v) in method.saveState() { st["method/\(k)"] = v }
        for (i, s) in method.model.dropoutStates.enumerated() { st["dropout/\(i)"] = wordsTensor(s) }
        st["loop/position"] = Tensor(shape: [4], data: [Float(epoch), Float(batch), Float(epochs), Float(batchSize)])
        st["loop/rng"] = wordsTensor(rng.stateWords)
        st["loop/history"] = wordsTensor(history.map(\.bitPattern))
        st["loop/loss_sum"] = doubleTensor(lossSum)
        return st
    }

    private func restore(_ st: [String: Tensor], epoch: inout Int, batch: inout Int, rng: inout SeededRNG,
                         history: inout [Double], lossSum: inout Double) throws {
        guard let pos = st["loop/position"], pos.count == 4, let r = st["loop/rng"], let h = st["loop/history"],
              let ls = st["loop/loss_sum"] else {
            throw SAATError.corrupt("checkpoint", "missing training-loop entries (loop/position, loop/rng, loop/history)")
        }
        guard Int(pos.data[2]) == epochs, Int(pos.data[3]) == batchSize else {
            throw SAATError.invalidArgument("resume", "a checkpoint of a run with epochs=\(epochs) and batch_size=\(batchSize), got epochs=\(Int(pos.data[2])), batch_size=\(Int(pos.data[3]))")
        }
        var params: [String: Tensor] = [:], optim: [String: Tensor] = [:], meth: [String: Tensor] = [:]
        for (k, v) in st {
            if k.hasPrefix("model/") { params[String(k.dropFirst(6))] = v }
            else if k.hasPrefix("optim/") { optim[String(k.dropFirst(6))] = v }
            else if k.hasPrefix("method/") { meth[String(k.dropFirst(7))] = v }
        }
        if method.modelMode == .eval {
            // A frozen model (ProS-GAN's target) is not the run's to restore: the checkpoint must
            // be of a run against this very model.
            let current = Dictionary(uniqueKeysWithValues: method.model.stateDict())
            guard params.count == current.count, params.allSatisfy({ current[$0.key]?.data == $0.value.data }) else {
                throw SAATError.invalidArgument("resume", "a checkpoint of a run against this model (its weights differ)")
            }
        } else {
            try method.model.loadStateDict(params, argument: "resume")
        }
        try method.optimizer.loadState(optim)
        try method.loadState(meth)
        let nDrop = method.model.dropoutStates.count
        var drops: [[UInt64]] = []
        for i in 0..<nDrop {
            guard let t = st["dropout/\(i)"] else { throw SAATError.corrupt("checkpoint", "missing dropout/\(i)") }
            drops.append(try words(t))
        }
        method.model.dropoutStates = drops
        epoch = Int(pos.data[0]); batch = Int(pos.data[1])
        guard epoch >= 0, epoch <= epochs, batch >= 0, batch < batchesPerEpoch else {
            throw SAATError.corrupt("checkpoint", "position epoch \(epoch), batch \(batch) out of range")
        }
        rng = SeededRNG(state: try words(r))
        history = try words(h).map(Double.init(bitPattern:))
        lossSum = try double(ls)
    }
}

// Exact round trip of 64-bit words and doubles through float32 tensors (bit patterns split in
// 16-bit halves so every value is an exactly representable float).
func wordsTensor(_ w: [UInt64]) -> Tensor {
    var d: [Float] = []
    for x in w { for s in stride(from: 48, through: 0, by: -16) { d.append(Float((x >> UInt64(s)) & 0xFFFF)) } }
    return Tensor(shape: [d.count], data: d)
}

func words(_ t: Tensor) throws -> [UInt64] {
    guard t.count % 4 == 0 else { throw SAATError.corrupt("checkpoint", "malformed RNG state") }
    var w: [UInt64] = []
    for i in stride(from: 0, to: t.count, by: 4) {
        var x: UInt64 = 0
        for j in 0..<4 {
            let v = t.data[i + j]
            guard v >= 0, v <= 65535, v == v.rounded() else { throw SAATError.corrupt("checkpoint", "malformed RNG state") }
            x = (x << 16) | UInt64(v)
        }
        w.append(x)
    }
    return w
}

func doubleTensor(_ v: Double) -> Tensor { wordsTensor([v.bitPattern]) }
func double(_ t: Tensor) throws -> Double { Double(bitPattern: try words(t)[0]) }
