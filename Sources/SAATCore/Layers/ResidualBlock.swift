import HashKernels

/// The residual block of ProS-GAN's generator (`ResidualBlock(dim, dim, net_mode='t')` of the
/// official `model/module.py`, after StarGAN's): y = x + block(x), block = Conv2d(C, C, 3,
/// padding 1, no bias) → InstanceNorm2d(C) (no affine parameters) → ReLU → Conv2d(C, C, 3,
/// padding 1, no bias) → InstanceNorm2d(C).
///
/// Padding: zero padding of 1 (as that module; CycleGAN's 'reflect' option is not implemented).
/// Shapes are preserved: (N, C, H, W) → (N, C, H, W). Backward: ∂x = ∂y + block'(∂y).
/// Parameters: the two convolutions' "weight" (`namedParams` gives the module's `main.0.weight`
/// and `main.3.weight`, where index 0 and 3 are the convolutions).
public final class ResidualBlock: Layer {
    public let channels: Int
    public let conv1: Conv2d, norm1: InstanceNorm2d, relu: ReLU, conv2: Conv2d, norm2: InstanceNorm2d
    private var layers: [Layer] { [conv1, norm1, relu, conv2, norm2] }

    /// Draws conv1's then conv2's weights from `rng` (each as `Conv2d.init`).
    public init(channels: Int, eps: Double = 1e-5, rng: inout SeededRNG) {
        precondition(channels > 0, "ResidualBlock: channels must be positive")
        self.channels = channels
        conv1 = Conv2d(inChannels: channels, outChannels: channels, kernel: 3, stride: 1, padding: 1, bias: false, rng: &rng)
        norm1 = InstanceNorm2d(channels: channels, eps: eps)
        relu = ReLU()
        conv2 = Conv2d(inChannels: channels, outChannels: channels, kernel: 3, stride: 1, padding: 1, bias: false, rng: &rng)
        norm2 = InstanceNorm2d(channels: channels, eps: eps)
    }

    public var params: [Param] { conv1.params + conv2.params }

    public var namedParams: [(name: String, param: Param)] {
        [("main.0.weight", conv1.weight), ("main.3.weight", conv2.weight)]
    }

    public func outputShape(_ input: [Int]) -> [Int] {
        precondition(input.count == 3 && input[0] == channels,
                     "ResidualBlock: expected item shape [\(channels), H, W], got \(input)")
        return input
    }

    /// a + b elementwise (same shapes), split over the kernels' threads.
    static func sum(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "ResidualBlock: \(a.shape) + \(b.shape)")
        var out = b
        if out.count == 0 { return out }
        a.data.withUnsafeBufferPointer { ap in
            out.data.withUnsafeMutableBufferPointer { op in
                let x = ap.baseAddress!, y = op.baseAddress!
                Elementwise.parallel(count: a.count) { r in
                    Elementwise.add(x + r.lowerBound, into: y + r.lowerBound, count: r.count)
                }
            }
        }
        return out
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank == 4, "ResidualBlock: expected input (N, C, H, W), got \(x.shape)")
        _ = outputShape(Array(x.shape.dropFirst()))
        let h = layers.reduce(x) { $1.forward($0, mode: mode) }
        return Self.sum(x, h)
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        let g = layers.reversed().reduce(dy) { $1.backward($0, paramGrads: paramGrads) }
        return Self.sum(dy, g)
    }
}
