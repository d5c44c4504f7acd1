/// Flattens every item: (N, d1, d2, …) → (N, d1·d2·…), e.g. (N, C, H, W) → (N, C·H·W) in NCHW order
/// (as `torch.flatten(x, 1)`). Pure reshape: no copy of the values; backward reshapes ∂y back.
public final class Flatten: Layer {
    private var inputShape: [Int]?

    public init() {}

    public func outputShape(_ input: [Int]) -> [Int] {
        precondition(!input.isEmpty, "Flatten: expected a non-empty item shape")
        return [input.reduce(1, *)]
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank >= 2, "Flatten: expected input (N, …), got \(x.shape)")
        inputShape = x.shape
        return x.reshaped([x.shape[0], x.itemSize])
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let s = inputShape else { preconditionFailure("Flatten.backward before forward") }
        precondition(dy.shape == [s[0], s.dropFirst().reduce(1, *)],
                     "Flatten.backward: dy \(dy.shape) does not match input \(s)")
        return dy.reshaped(s)
    }
}
