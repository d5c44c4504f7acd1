/// A learnable tensor with its gradient, named as in PyTorch's `state_dict` ("weight", "bias").
///
/// Every change of `value` (assignment or in-place mutation through it, as the optimisers and
/// state-dict loads do) advances `version`, so layers may keep data derived from the value (e.g.
/// `Conv2d`'s Winograd filter transforms) until it changes.
public final class Param {
    public let name: String
    public var value: Tensor { didSet { version &+= 1 } }
    /// Advanced by every change of `value`; starts at 0.
    public private(set) var version: UInt64 = 0
    public var grad: Tensor

    public init(_ name: String, _ value: Tensor) {
        self.name = name
        self.value = value
        self.grad = Tensor(zeros: value.shape)
    }
}

/// Train mode enables dropout; eval mode makes the network deterministic.
public enum Mode: Sendable { case train, eval }

/// One differentiable layer of a network.
///
/// Contract:
/// - `forward(x, mode:)` computes the output for a batch (leading dimension N) and caches what
///   `backward` needs (inputs, masks, argmax indices).
/// - `backward(dy, paramGrads:)` takes ∂L/∂output for the batch of the *last* forward call and
///   returns ∂L/∂input. When `paramGrads` is true it **accumulates** (+=) ∂L/∂θ into each
///   `Param.grad`; attacks pass false and skip that work.
/// - Layers that hold no parameters return `[]` from `params`.
public protocol Layer: AnyObject {
    func forward(_ x: Tensor, mode: Mode) -> Tensor
    func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor
    var params: [Param] { get }
    /// Output shape (without the batch dimension) for an input item shape; traps on a misfit.
    func outputShape(_ input: [Int]) -> [Int]
}

extension Layer {
    public var params: [Param] { [] }
}
