/// Rectified linear unit, y = max(x, 0) elementwise (any shape), as `torch.nn.ReLU`.
/// Backward: ∂x = ∂y where y > 0, else 0 (mask from the cached forward *output*; subgradient 0 at 0,
/// as PyTorch's `threshold_backward`).
public final class ReLU: Layer {
    private var output: Tensor?

    public init() {}

    public func outputShape(_ input: [Int]) -> [Int] { input }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        // Split over the kernels' threads (elementwise: the same values for any split).
        let y = Tensor.elementwise(x, x) { xb, _, yb, n in
            Elementwise.parallel(count: n) { r in
                Elementwise.relu(xb + r.lowerBound, into: yb + r.lowerBound, count: r.count)
            }
        }
        output = y
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let y = output else { preconditionFailure("ReLU.backward before forward") }
        precondition(dy.shape == y.shape, "ReLU.backward: expected dy \(y.shape), got \(dy.shape)")
        return Tensor.elementwise(y, dy) { yb, db, xb, n in
            Elementwise.parallel(count: n) { r in
                let o = r.lowerBound
                Elementwise.reluBackward(output: yb + o, db + o, into: xb + o, count: r.count)
            }
        }
    }
}
