/// A first-order optimiser over a fixed list of parameters (PyTorch `torch.optim` semantics).
public protocol Optimizer: AnyObject {
    /// Base learning rate; the schedule scales it.
    var learningRate: Float { get set }
    /// One update of every parameter from its `grad`.
    func step()
    /// Slot tensors (momentum buffers, Adam moments, step counter) for checkpoints.
    func saveState() -> [String: Tensor]
    func loadState(_ state: [String: Tensor]) throws
}

/// A learning rate as a function of the iteration (0-based) of a run.
public protocol LearningRateSchedule: Sendable {
    func rate(at t: Int) -> Float
}

/// Learning rate that drops by `gamma` at each milestone (PyTorch `MultiStepLR`):
/// lr(t) = base · gamma^{#{m ∈ milestones : m ≤ t}} for step/epoch counter t.
public struct MultiStepSchedule: LearningRateSchedule, Equatable {
    public var base: Float
    public var milestones: [Int]
    public var gamma: Float

    public init(base: Float, milestones: [Int], gamma: Float = 0.1) {
        self.base = base
        self.milestones = milestones.sorted()
        self.gamma = gamma
    }

    /// Milestones at fractions of `total` steps (e.g. [0.5, 0.75] as SAAT/CgAT's adversarial training).
    public init(base: Float, fractions: [Double], total: Int, gamma: Float = 0.1) {
        self.init(base: base, milestones: fractions.map { Int(($0 * Double(total)).rounded(.down)) }, gamma: gamma)
    }

    public func rate(at t: Int) -> Float {
        var lr = base
        for m in milestones where m <= t { lr *= gamma }
        return lr
    }
}

/// The 'linear' policy of CycleGAN-style GAN training (ProS-GAN's `get_scheduler`, a `LambdaLR`
/// stepped once per epoch): the rate is `base` for the first `constantEpochs` epochs, then decays
/// linearly over `decayEpochs` more: in epoch e (0-based) lr = base · (1 − max(0, e + 1 −
/// constantEpochs) / (decayEpochs + 1)). Iteration t is in epoch ⌊t / batchesPerEpoch⌋.
public struct LinearDecaySchedule: LearningRateSchedule, Equatable {
    public var base: Float
    public var constantEpochs: Int
    public var decayEpochs: Int
    public var batchesPerEpoch: Int

    public init(base: Float, constantEpochs: Int, decayEpochs: Int, batchesPerEpoch: Int) {
        precondition(constantEpochs >= 0 && decayEpochs >= 0 && batchesPerEpoch >= 1, "LinearDecaySchedule: bad configuration")
        self.base = base; self.constantEpochs = constantEpochs; self.decayEpochs = decayEpochs
        self.batchesPerEpoch = batchesPerEpoch
    }

    public func rate(at t: Int) -> Float {
        let e = t / batchesPerEpoch
        return base * Float(1 - Double(max(0, e + 1 - constantEpochs)) / Double(decayEpochs + 1))
    }
}
