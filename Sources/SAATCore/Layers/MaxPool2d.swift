/// Max pooling, as `torch.nn.MaxPool2d(kernel, stride)` (no padding, floor mode; first maximum
/// wins on ties). Input (N, C, H, W) → (N, C, (H − k)/s + 1, (W − k)/s + 1). The forward caches the
/// argmax indices; the backward scatters ∂y into them (`HashKernels.MaxPool2D`).
public final class MaxPool2d: Layer {
    public let kernel: Int, stride: Int
    private var argmax: [Int32] = []
    private var geometry: Pool2DGeometry?

    public init(kernel: Int, stride: Int) {
        precondition(kernel > 0 && stride > 0, "MaxPool2d: kernel and stride must be positive")
        self.kernel = kernel; self.stride = stride
    }

    private func geometry(batch: Int, _ item: [Int]) -> Pool2DGeometry {
        precondition(item.count == 3, "MaxPool2d: expected item shape [C, H, W], got \(item)")
        return Pool2DGeometry(batch: batch, channels: item[0], height: item[1], width: item[2],
                              kernel: kernel, stride: stride)
    }

    public func outputShape(_ input: [Int]) -> [Int] {
        Array(geometry(batch: 1, input).outputShape.dropFirst())
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank == 4, "MaxPool2d: expected input (N, C, H, W), got \(x.shape)")
        let g = geometry(batch: x.shape[0], Array(x.shape.dropFirst()))
        var y = Tensor(uninitialized: g.outputShape)
        if argmax.count != g.outputCount { argmax = [Int32](repeating: 0, count: g.outputCount) }
        if g.outputCount > 0 {
            x.data.withUnsafeBufferPointer { xp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    argmax.withUnsafeMutableBufferPointer { ap in
                        MaxPool2D.forward(x: xp.baseAddress!, y: yp.baseAddress!, argmax: ap.baseAddress!, geometry: g)
                    }
                }
            }
        }
        geometry = g
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let g = geometry else { preconditionFailure("MaxPool2d.backward before forward") }
        precondition(dy.shape == g.outputShape, "MaxPool2d.backward: expected dy \(g.outputShape), got \(dy.shape)")
        var dx = Tensor(uninitialized: [g.batch, g.channels, g.height, g.width])   // backward zero-fills
        if g.outputCount == 0 { return dx }
        dy.data.withUnsafeBufferPointer { dp in
            argmax.withUnsafeBufferPointer { ap in
                dx.data.withUnsafeMutableBufferPointer { dxp in
                    MaxPool2D.backward(dy: dp.baseAddress!, argmax: ap.baseAddress!, dx: dxp.baseAddress!, geometry: g)
                }
            }
        }
        return dx
    }
}
