/// 2-d convolution layer, as `torch.nn.Conv2d(inChannels, outChannels, kernel, stride, padding,
/// bias:)` with square kernels, zero padding, dilation 1, groups 1.
///
/// Input x (N, C, H, W) → output (N, O, OH, OW), OH = (H + 2p − k)/s + 1;
/// y[n, o, i, j] = b[o] + Σ_{c,u,v} w[o, c, u, v] · x[n, c, i·s − p + u, j·s − p + v].
/// Parameters "weight" (O, C, k, k) and, with `bias` (the default), "bias" (O) (PyTorch's layout
/// and names); without it `bias` stays a zero vector that is not a parameter (not trained, not in
/// `params`). The kernels
/// (im2col + one sgemm per image, images split over threads) are `HashKernels.Conv2D`.
///
/// Initialisation (PyTorch's default): fan_in = C·k·k; weight ~ U(−1/√fan_in, 1/√fan_in)
/// (kaiming_uniform_ with a = √5), bias ~ U(−1/√fan_in, 1/√fan_in); drawn from `rng` weight first
/// in row-major (o, c, u, v) order, then bias.
///
/// `backward(dy, paramGrads: false)` runs only the input-gradient path (Wᵀ·δ and col2im).
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let weight: Param
    /// The bias; all zeros and outside `params` when the layer was built with `bias: false`.
    public let bias: Param
    public let hasBias: Bool
    private var input: Tensor?
    /// Scratch of the conv kernels, kept across calls (grown on demand, never shrunk below the
    /// largest batch seen) so steady-state forward/backward passes allocate no column matrices.
    private var workspace: [Float] = []
    /// State of the last fused `forwardBlock` (see the extension below).
    var blockCache: BlockCache?
    /// The Winograd filter transforms of the weights (forward and input gradient), kept until the
    /// weight changes (`Param.version`) or the image size asks for another tile size: the steps
    /// of an attack and the batches of an encoding pass, whose weights stay fixed, transform them
    /// once instead of on every call. Trained weights change every step and are transformed again.
    private let forwardFilters = FilterCache(), adjointFilters = FilterCache()

    /// Runs `body(workspace, threads)` with a workspace sized for `threads` (read once, so a
    /// concurrent `setComputeThreads` cannot make the kernels overrun it). The workspace has no
    /// room for Winograd filters: the layer always passes its cached ones (`withFilters`).
    func withWorkspace<R>(_ g: Conv2DGeometry, _ body: (UnsafeMutablePointer<Float>, Int) -> R) -> R {
        let threads = ParallelFor.computeThreads
        let need = Conv2D.workspaceCount(g, threads: threads, includingFilters: false)
        if workspace.count < need { workspace = [Float](repeating: 0, count: need) }
        return workspace.withUnsafeMutableBufferPointer { body($0.baseAddress!, threads) }
    }

    /// One direction's transformed filters and what they were computed from.
    final class FilterCache {
        var data: [Float] = []
        /// (weight version, tile size) of `data`; nil before the first transform.
        var key: (version: UInt64, tile: Int)?
    }

    /// Runs `body` with this layer's Winograd filters for `g` (forward, or the input gradient's
    /// with `adjoint`), transformed only when the weight or the tile size changed since the last
    /// call; nil for a layer that does not use Winograd. The values are those the kernels would
    /// compute themselves (`Conv2D.transformFilters` does not depend on the batch or threads).
    func withFilters<R>(_ g: Conv2DGeometry, adjoint: Bool, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let tile = Winograd.tileSize(g) else { return body(nil) }
        let cache = adjoint ? adjointFilters : forwardFilters
        if cache.key?.version != weight.version || cache.key?.tile != tile {
            let count = Conv2D.filterCount(g)
            if cache.data.count != count { cache.data = [Float](repeating: 0, count: count) }
            weight.value.data.withUnsafeBufferPointer { wp in
                cache.data.withUnsafeMutableBufferPointer {
                    Conv2D.transformFilters(wp.baseAddress!, g, adjoint: adjoint, into: $0.baseAddress!)
                }
            }
            cache.key = (weight.version, tile)
        }
        return cache.data.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout SeededRNG) {
        precondition(inChannels > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                     "Conv2d: bad configuration")
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        let bound = defaultInitBound(fanIn: inChannels * kernel * kernel)
        weight = Param("weight", uniformTensor([outChannels, inChannels, kernel, kernel], bound: bound, rng: &rng))
        self.bias = Param("bias", bias ? uniformTensor([outChannels], bound: bound, rng: &rng) : Tensor(zeros: [outChannels]))
        hasBias = bias
    }

    public var params: [Param] { hasBias ? [weight, bias] : [weight] }

    func geometry(batch: Int, _ item: [Int]) -> Conv2DGeometry {
        precondition(item.count == 3 && item[0] == inChannels,
                     "Conv2d: expected item shape [\(inChannels), H, W], got \(item)")
        return Conv2DGeometry(batch: batch, inChannels: inChannels, height: item[1], width: item[2],
                              outChannels: outChannels, kernel: kernel, stride: stride, padding: padding)
    }

    public func outputShape(_ input: [Int]) -> [Int] {
        Array(geometry(batch: 1, input).outputShape.dropFirst())
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank == 4, "Conv2d: expected input (N, C, H, W), got \(x.shape)")
        let g = geometry(batch: x.shape[0], Array(x.shape.dropFirst()))
        var y = Tensor(uninitialized: g.outputShape)
        if g.batch > 0 {
            y.data.withUnsafeMutableBufferPointer { convForward(x, g, y: $0.baseAddress!, relu: false, pool: nil) }
        }
        input = x
        blockCache = nil
        return y
    }

    /// `Conv2D.forward` of x with this layer's weights, bias and workspace.
    func convForward(_ x: Tensor, _ g: Conv2DGeometry, y: UnsafeMutablePointer<Float>?, relu: Bool,
                     pool: Conv2D.PoolOutput?) {
        x.data.withUnsafeBufferPointer { xp in
            weight.value.data.withUnsafeBufferPointer { wp in
                bias.value.data.withUnsafeBufferPointer { bp in
                    withFilters(g, adjoint: false) { U in
                        withWorkspace(g) { ws, t in
                            Conv2D.forward(x: xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress!, y: y,
                                           geometry: g, relu: relu, pool: pool, filters: U, workspace: ws, threads: t)
                        }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("Conv2d.backward before forward") }
        let g = geometry(batch: x.shape[0], Array(x.shape.dropFirst()))
        precondition(dy.shape == g.outputShape, "Conv2d.backward: expected dy \(g.outputShape), got \(dy.shape)")
        return convBackward(x, dy, g, paramGrads: paramGrads, reluOutput: nil, argmax: [], pool: nil)
    }

    /// `Conv2D.backward` for input x and output gradient dy with this layer's weights, gradients
    /// and workspace; with `reluOutput` (and `pool`, `argmax`) its fused prologue. Returns ∂x.
    func convBackward(_ x: Tensor, _ dy: Tensor, _ g: Conv2DGeometry, paramGrads: Bool,
                      reluOutput: Tensor?, argmax: [Int32], pool: Pool2DGeometry?) -> Tensor {
        var dx = Tensor(uninitialized: x.shape)   // Conv2D.backward overwrites every image
        if g.batch == 0 { return dx }
        x.data.withUnsafeBufferPointer { xp in
            weight.value.data.withUnsafeBufferPointer { wp in
                dy.data.withUnsafeBufferPointer { dp in
                    (reluOutput?.data ?? []).withUnsafeBufferPointer { rp in
                        argmax.withUnsafeBufferPointer { ap in
                            dx.data.withUnsafeMutableBufferPointer { dxp in
                                weight.grad.data.withUnsafeMutableBufferPointer { gw in
                                    bias.grad.data.withUnsafeMutableBufferPointer { gb in
                                        withFilters(g, adjoint: true) { U in
                                            withWorkspace(g) { ws, t in
                                                Conv2D.backward(x: paramGrads ? xp.baseAddress! : nil, weight: wp.baseAddress!,
                                                                dy: dp.baseAddress!, geometry: g, dx: dxp.baseAddress!,
                                                                dWeight: paramGrads ? gw.baseAddress! : nil,
                                                                dBias: paramGrads && hasBias ? gb.baseAddress! : nil,
                                                                relu: reluOutput == nil ? nil : rp.baseAddress!,
                                                                pool: pool.map { .init(geometry: $0, argmax: ap.baseAddress!) },
                                                                filters: U, workspace: ws, threads: t)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}

// MARK: fused conv → ReLU (→ max-pool) block

extension Conv2d {
    /// State of the last `forwardBlock`: the ReLU'd convolution output (the ReLU mask of the
    /// backward) or, with a pool, the pooled output with its argmax indices and geometry.
    final class BlockCache {
        let input: Tensor
        let reluOutput: Tensor
        let argmax: [Int32]
        let pool: Pool2DGeometry?
        init(input: Tensor, reluOutput: Tensor, argmax: [Int32], pool: Pool2DGeometry?) {
            self.input = input; self.reluOutput = reluOutput; self.argmax = argmax; self.pool = pool
        }
    }

    /// `pool.forward(relu.forward(forward(x)))` in one pass (`Conv2D.forward` with its fused
    /// epilogue: ReLU and pooling run per image while the GEMM output is in cache). Returns the
    /// same values as the three layers in turn; `backwardBlock` is its adjoint. The ReLU and pool
    /// layers' own caches are not used (they hold no parameters).
    public func forwardBlock(_ x: Tensor, pool: MaxPool2d?) -> Tensor {
        precondition(x.rank == 4, "Conv2d: expected input (N, C, H, W), got \(x.shape)")
        let g = geometry(batch: x.shape[0], Array(x.shape.dropFirst()))
        let out: Tensor
        var argmax: [Int32] = []
        var pg: Pool2DGeometry? = nil
        if let pool {
            // Only the pooled output and argmax are kept: they are all the backward needs.
            let geo = Pool2DGeometry(batch: g.batch, channels: g.outChannels, height: g.outHeight, width: g.outWidth,
                                     kernel: pool.kernel, stride: pool.stride)
            var pooled = Tensor(uninitialized: geo.outputShape)
            argmax = [Int32](unsafeUninitializedCapacity: geo.outputCount) { _, c in c = geo.outputCount }
            if g.batch > 0 {
                pooled.data.withUnsafeMutableBufferPointer { pp in
                    argmax.withUnsafeMutableBufferPointer { ap in
                        convForward(x, g, y: nil, relu: true,
                                    pool: .init(geometry: geo, y: pp.baseAddress!, argmax: ap.baseAddress!))
                    }
                }
            }
            out = pooled
            pg = geo
        } else {
            var y = Tensor(uninitialized: g.outputShape)
            if g.batch > 0 {
                y.data.withUnsafeMutableBufferPointer { convForward(x, g, y: $0.baseAddress!, relu: true, pool: nil) }
            }
            out = y
        }
        blockCache = BlockCache(input: x, reluOutput: out, argmax: argmax, pool: pg)
        input = nil
        return out
    }

    /// The adjoint of the last `forwardBlock`: `dy` is the gradient of the block's output (the
    /// pooled output when it had a pool). Returns ∂x; accumulates ∂W, ∂b when `paramGrads`.
    public func backwardBlock(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let cache = blockCache else { preconditionFailure("Conv2d.backwardBlock before forwardBlock") }
        let x = cache.input
        let g = geometry(batch: x.shape[0], Array(x.shape.dropFirst()))
        let expected = cache.pool?.outputShape ?? g.outputShape
        precondition(dy.shape == expected, "Conv2d.backwardBlock: expected dy \(expected), got \(dy.shape)")
        return convBackward(x, dy, g, paramGrads: paramGrads, reluOutput: cache.reluOutput,
                            argmax: cache.argmax, pool: cache.pool)
    }
}
