import HashKernels

/// 2-d transposed convolution, as `torch.nn.ConvTranspose2d(inChannels, outChannels, kernel,
/// stride, padding, outputPadding, bias:)` with square kernels, zero padding, dilation 1, groups 1.
///
/// Input x (N, C, H, W) → output (N, O, OH, OW), OH = (H − 1)·s − 2p + k + output_padding (same
/// for W); the extra `outputPadding` rows/columns are added at the bottom/right (they receive the
/// contributions that land there, and the bias). Scatter form:
/// y[n, o, i·s − p + u, j·s − p + v] += x[n, c, i, j] · w[c, o, u, v], plus b[o] everywhere.
/// Parameters "weight" (C, O, k, k) — PyTorch's layout for transposed convolutions, input
/// channels first — and, with `bias`, "bias" (O).
///
/// Method: a transposed convolution is the input gradient of the convolution
/// `Conv2d(O → C, k, s, p)` applied to an (N, O, OH, OW) image, with the same weight read as that
/// convolution's (C, O, k, k) weight. So the kernels are `HashKernels.Conv2D`'s, with that
/// convolution's geometry (`convGeometry`, whose output size (OH + 2p − k)/s + 1 is H when
/// output_padding < s):
/// - forward      = `Conv2D.backward`'s ∂x path (per image: sgemm Wᵀ·x[n], then col2im), + bias;
/// - ∂x           = `Conv2D.forward` of ∂y (im2col + sgemm; no bias);
/// - ∂W           = `Conv2D.backward`'s ∂W path with the roles swapped: conv input ∂y, conv output
///                  gradient x: ∂w[c, o, u, v] = Σ_{n,i,j} x[n, c, i, j] · ∂y[n, o, i·s − p + u, j·s − p + v];
/// - ∂b[o]        = Σ_{n, h, w} ∂y[n, o, h, w].
/// For 3×3, stride 1, padding 1 layers with ≥ 16 channels on both sides those kernels take their
/// Winograd path (see `Conv2D`). Forward outputs and ∂x do not depend on the thread count; ∂W and
/// ∂b are bitwise reproducible for a fixed thread count (as `Conv2d`'s).
///
/// Initialisation (PyTorch's default for `_ConvNd`): fan_in = weight.size(1)·k·k = O·k·k for a
/// transposed convolution; weight and bias ~ U(−1/√fan_in, 1/√fan_in), drawn from `rng` weight
/// first in row-major (c, o, u, v) order, then bias.
public final class ConvTranspose2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, outputPadding: Int
    public let weight: Param
    /// nil when built with `bias: false`.
    public let bias: Param?
    private var input: Tensor?
    /// Scratch of the conv kernels (see `Conv2d.workspace`).
    private var workspace: [Float] = []

    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, bias: Bool = true, rng: inout SeededRNG) {
        precondition(inChannels > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                     "ConvTranspose2d: bad configuration")
        // PyTorch: output padding must be smaller than either stride or dilation (dilation is 1).
        precondition(outputPadding >= 0 && outputPadding < stride,
                     "ConvTranspose2d: output_padding \(outputPadding) must be in 0..<stride (\(stride))")
        self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding
        let bound = defaultInitBound(fanIn: outChannels * kernel * kernel)
        weight = Param("weight", uniformTensor([inChannels, outChannels, kernel, kernel], bound: bound, rng: &rng))
        self.bias = bias ? Param("bias", uniformTensor([outChannels], bound: bound, rng: &rng)) : nil
    }

    public var params: [Param] { bias.map { [weight, $0] } ?? [weight] }

    /// Output height/width for an input height/width.
    public func outputSize(_ h: Int) -> Int { (h - 1) * stride - 2 * padding + kernel + outputPadding }

    /// The convolution (O → C channels, on the OH × OW output) whose input gradient this layer is.
    func convGeometry(batch: Int, _ item: [Int]) -> Conv2DGeometry {
        precondition(item.count == 3 && item[0] == inChannels,
                     "ConvTranspose2d: expected item shape [\(inChannels), H, W], got \(item)")
        let oh = outputSize(item[1]), ow = outputSize(item[2])
        precondition(item[1] > 0 && item[2] > 0 && oh > 0 && ow > 0,
                     "ConvTranspose2d: input \(item) gives an empty output \(oh)x\(ow)")
        let g = Conv2DGeometry(batch: batch, inChannels: outChannels, height: oh, width: ow,
                               outChannels: inChannels, kernel: kernel, stride: stride, padding: padding)
        precondition(g.outHeight == item[1] && g.outWidth == item[2], "ConvTranspose2d: geometry mismatch")
        return g
    }

    public func outputShape(_ input: [Int]) -> [Int] {
        let g = convGeometry(batch: 1, input)
        return [outChannels, g.height, g.width]
    }

    private func withWorkspace<R>(_ g: Conv2DGeometry, _ body: (UnsafeMutablePointer<Float>, Int) -> R) -> R {
        let threads = ParallelFor.computeThreads
        let need = Conv2D.workspaceCount(g, threads: threads)
        if workspace.count < need { workspace = [Float](repeating: 0, count: need) }
        return workspace.withUnsafeMutableBufferPointer { body($0.baseAddress!, threads) }
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank == 4, "ConvTranspose2d: expected input (N, C, H, W), got \(x.shape)")
        let g = convGeometry(batch: x.shape[0], Array(x.shape.dropFirst()))
        let n = g.batch, O = outChannels, plane = g.inPlane
        var y = Tensor(uninitialized: [n, O, g.height, g.width])   // the ∂x path overwrites every image
        input = x
        if n == 0 { return y }
        x.data.withUnsafeBufferPointer { xp in
            weight.value.data.withUnsafeBufferPointer { wp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    withWorkspace(g) { ws, t in
                        Conv2D.backward(x: nil, weight: wp.baseAddress!, dy: xp.baseAddress!, geometry: g,
                                        dx: yp.baseAddress!, dWeight: nil, dBias: nil, workspace: ws, threads: t)
                    }
                    if let bias {
                        bias.value.data.withUnsafeBufferPointer { bp in
                            let ya = yp.baseAddress!, ba = bp.baseAddress!
                            ParallelFor.split(count: n * O) { _, planes in
                                for q in planes where ba[q % O] != 0 {
                                    Elementwise.addScalar(ya + q * plane, ba[q % O], into: ya + q * plane, count: plane)
                                }
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("ConvTranspose2d.backward before forward") }
        let g = convGeometry(batch: x.shape[0], Array(x.shape.dropFirst()))
        let expected = [g.batch, outChannels, g.height, g.width]
        precondition(dy.shape == expected, "ConvTranspose2d.backward: expected dy \(expected), got \(dy.shape)")
        var dx = Tensor(uninitialized: x.shape)   // Conv2D.forward overwrites every value
        if g.batch == 0 { return dx }
        dy.data.withUnsafeBufferPointer { dp in
            weight.value.data.withUnsafeBufferPointer { wp in
                dx.data.withUnsafeMutableBufferPointer { dxp in
                    withWorkspace(g) { ws, t in
                        Conv2D.forward(x: dp.baseAddress!, weight: wp.baseAddress!, bias: nil, y: dxp.baseAddress!,
                                       geometry: g, workspace: ws, threads: t)
                    }
                }
            }
            guard paramGrads else { return }
            x.data.withUnsafeBufferPointer { xp in
                weight.value.data.withUnsafeBufferPointer { wp in
                    weight.grad.data.withUnsafeMutableBufferPointer { gw in
                        withWorkspace(g) { ws, t in
                            Conv2D.backward(x: dp.baseAddress!, weight: wp.baseAddress!, dy: xp.baseAddress!, geometry: g,
                                            dx: nil, dWeight: gw.baseAddress!, dBias: nil, workspace: ws, threads: t)
                        }
                    }
                }
            }
            if let bias {
                // Per-plane sums, then added image by image in order (thread-count independent).
                let n = g.batch, O = outChannels, plane = g.inPlane
                var sums = [Float](repeating: 0, count: n * O)
                sums.withUnsafeMutableBufferPointer { sp in
                    let s = sp.baseAddress!, d = dp.baseAddress!
                    ParallelFor.split(count: n * O) { _, planes in
                        for q in planes { s[q] = Elementwise.sum(d + q * plane, count: plane) }
                    }
                }
                bias.grad.data.withUnsafeMutableBufferPointer { gb in
                    sums.withUnsafeBufferPointer { Elementwise.accumulateColumnSums($0.baseAddress!, rows: n, cols: O,
                                                                                     into: gb.baseAddress!) }
                }
            }
        }
        return dx
    }
}
