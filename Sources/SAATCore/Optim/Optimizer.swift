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

/// Learning rate that drops by `gamma` at each milestone (PyTorch `MultiStepLR`):
/// lr(t) = base · gamma^{#{m ∈ milestones : m ≤ t}} for step/epoch counter t.
public struct MultiStepSchedule: Sendable, Equatable {
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
