import HashKernels

/// Leaky rectified linear unit, elementwise (any shape), as `torch.nn.LeakyReLU(negativeSlope)`:
/// y = x for x > 0, else negativeSlope·x (one float32 product). Backward, as PyTorch's
/// `leaky_relu_backward` (mask from the cached *input*): ∂x = ∂y where x > 0, else
/// negativeSlope·∂y (so the slope at 0 is negativeSlope). NaN propagates.
public final class LeakyReLU: Layer {
    public let negativeSlope: Float
    private var input: Tensor?

    /// PyTorch's default slope is 0.01; ProS-GAN's discriminator uses 0.2.
    public init(negativeSlope: Float = 0.01) {
        precondition(negativeSlope.isFinite, "LeakyReLU: negative slope must be finite")
        self.negativeSlope = negativeSlope
    }

    public func outputShape(_ input: [Int]) -> [Int] { input }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        let a = negativeSlope
        let y = Tensor.elementwise(x, x) { xb, _, yb, n in
            Elementwise.parallel(count: n) { r in
                LeakyReLU.select(xb + r.lowerBound, xb + r.lowerBound, into: yb + r.lowerBound, count: r.count, slope: a)
            }
        }
        input = x
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("LeakyReLU.backward before forward") }
        precondition(dy.shape == x.shape, "LeakyReLU.backward: expected dy \(x.shape), got \(dy.shape)")
        let a = negativeSlope
        return Tensor.elementwise(x, dy) { xb, db, out, n in
            Elementwise.parallel(count: n) { r in
                let o = r.lowerBound
                LeakyReLU.select(xb + o, db + o, into: out + o, count: r.count, slope: a)
            }
        }
    }

    /// out[i] = x[i] > 0 ? v[i] : slope·v[i] (forward with v = x, backward with v = ∂y). A NaN x
    /// takes the slope branch, so the NaN of a forward propagates.
    static func select(_ x: UnsafePointer<Float>, _ v: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                       count n: Int, slope: Float) {
        typealias V = SIMD16<Float>
        let zero = V(repeating: 0), s = V(repeating: slope)
        var i = 0
        while i + 16 <= n {
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            var vv = UnsafeRawPointer(v + i).loadUnaligned(as: V.self)
            vv.replace(with: vv * s, where: .!(xv .> zero))
            UnsafeMutableRawPointer(out + i).storeBytes(of: vv, as: V.self)
            i += 16
        }
        while i < n { out[i] = x[i] > 0 ? v[i] : slope * v[i]; i += 1 }
    }
}
