/// Fully connected layer, as `torch.nn.Linear(inFeatures, outFeatures)`.
///
/// y[n, o] = Σ_i x[n, i] · w[o, i] + b[o]; x row-major (N, in), weight w (out, in), bias b (out),
/// y (N, out). Backward with δ = ∂L/∂y: ∂x = δ·W (N, in); ∂W += δᵀ·x (out, in); ∂b += Σ_n δ[n, ·].
/// y and ∂x are computed by `RowProducts` (every value in one fixed summation order), so an
/// image's outputs and input gradient are bitwise the same in any batch, at any position in it,
/// for any thread count: attacks give the same adversarial image however the queries are chunked
/// or sharded over processes. ∂W = δᵀ·x is one sgemm (OpenBLAS) per fixed block of
/// `Linear.block` rows of ∂W; it sums over the batch, and is bitwise the same for any thread
/// count (each value computed by one call whose shape depends only on its block: OpenBLAS picks
/// its micro-kernel, and so a value's summation order, from the call's shape). Output features
/// (`forwardBlock` for y, `block` for ∂W) and input features (`gradientBlock` for ∂x) are cut
/// into fixed blocks, which the kernels' threads share out.
///
/// Initialisation (PyTorch's default, `reset_parameters`): weight ~ U(−1/√in, 1/√in)
/// (`kaiming_uniform_(a=√5)` reduces to this bound), bias ~ U(−1/√in, 1/√in); drawn from `rng`
/// weight first in row-major order, then bias. (PyTorch uses its own generator, so values differ
/// from torch's for the same seed; the distribution is the same.)
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Param
    public let bias: Param
    private var input: Tensor?

    public init(inFeatures: Int, outFeatures: Int, rng: inout SeededRNG) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear: sizes must be positive")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = defaultInitBound(fanIn: inFeatures)
        weight = Param("weight", uniformTensor([outFeatures, inFeatures], bound: bound, rng: &rng))
        bias = Param("bias", uniformTensor([outFeatures], bound: bound, rng: &rng))
    }

    public var params: [Param] { [weight, bias] }

    /// Features per sgemm call (a multiple of the 16-row micro-kernels of OpenBLAS's x86 sgemm);
    /// 4096 features make 64 calls, each still large enough (m = 64) to run at full speed.
    static let block = 64

    /// Output features per `RowProducts.dots` call of the forward: each call copies the batch's x
    /// once (chunk-major, see `RowProducts.dotChunk`), so a block of 256 weight rows (fc6: 9 MiB
    /// of W per 0.6 MiB copy) keeps the copy cheap while 4096 features still make 16 blocks for
    /// the threads to share. Values do not depend on it.
    static let forwardBlock = 256

    /// Input features per `RowProducts.combinations` call of the input gradient: each call reads
    /// a run of this many contiguous floats from every row of W, so wide runs stream from memory
    /// (64-float runs of rows 36 KiB apart, alexnet's fc6, ran latency-bound: the input gradient
    /// took 2.3× the forward's time, measured on 2 Zen 4 cores). Values do not depend on it.
    static let gradientBlock = 512

    /// Threads for a batch of `n`: all of `ParallelFor.computeThreads` when the GEMM is large
    /// enough (≥ 8 MFLOP, ~0.1 ms on one core) to pay for a thread hand-off, else 1 (cnn-small's
    /// 512→32 hash layer at batch 64, 2 MFLOP, gains nothing from a split).
    private func threads(_ n: Int) -> Int { 2 * n * inFeatures * outFeatures >= 1 << 23 ? 0 : 1 }

    public func outputShape(_ input: [Int]) -> [Int] {
        precondition(input == [inFeatures], "Linear: expected item shape [\(inFeatures)], got \(input)")
        return [outFeatures]
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == inFeatures,
                     "Linear: expected input (N, \(inFeatures)), got \(x.shape)")
        let n = x.shape[0], I = inFeatures, O = outFeatures
        var y = Tensor(uninitialized: [n, O])   // every value is written below
        x.data.withUnsafeBufferPointer { xp in
            weight.value.data.withUnsafeBufferPointer { wp in
                bias.value.data.withUnsafeBufferPointer { bp in
                    y.data.withUnsafeMutableBufferPointer { yp in
                        guard let xa = xp.baseAddress, let ya = yp.baseAddress else { return }
                        let wa = wp.baseAddress!, ba = bp.baseAddress!
                        // Output features split over the threads, each reading only its rows of W.
                        ParallelFor.blocks(count: O, block: Self.forwardBlock, threads: threads(n)) { r in
                            RowProducts.dots(x: xa, rows: n, w: wa, outputs: r, k: I, bias: ba, y: ya, ldy: O)
                        }
                    }
                }
            }
        }
        input = x
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("Linear.backward before forward") }
        let n = x.shape[0], I = inFeatures, O = outFeatures
        precondition(dy.shape == [n, O], "Linear.backward: expected dy (\(n), \(O)), got \(dy.shape)")
        var dx = Tensor(uninitialized: x.shape)
        if n == 0 { return dx }
        dy.data.withUnsafeBufferPointer { dp in
            let d = dp.baseAddress!
            weight.value.data.withUnsafeBufferPointer { wp in
                dx.data.withUnsafeMutableBufferPointer { dxp in
                    let wa = wp.baseAddress!, dxa = dxp.baseAddress!
                    // Input features split over the threads: ∂x[:, r] = δ · W[:, r].
                    ParallelFor.blocks(count: I, block: Self.gradientBlock, threads: threads(n)) { r in
                        RowProducts.combinations(d: d, rows: n, m: O, w: wa, ldw: I, columns: r, dx: dxa, ldx: I)
                    }
                }
            }
            if paramGrads {
                x.data.withUnsafeBufferPointer { xp in
                    weight.grad.data.withUnsafeMutableBufferPointer { gw in
                        let xa = xp.baseAddress!, ga = gw.baseAddress!
                        // Rows of ∂W in fixed blocks (no reduction across blocks).
                        ParallelFor.blocks(count: O, block: Self.block, threads: threads(n)) { r in
                            BLAS.sgemm(transA: true, m: r.count, n: I, k: n, a: d + r.lowerBound, lda: O, b: xa, ldb: I,
                                       beta: 1, c: ga + r.lowerBound * I, ldc: I)
                        }
                    }
                }
                bias.grad.data.withUnsafeMutableBufferPointer { gb in
                    Elementwise.accumulateColumnSums(d, rows: n, cols: O, into: gb.baseAddress!)
                }
            }
        }
        return dx
    }
}

/// 1/√fanIn: the bound of PyTorch's default weight init (kaiming_uniform_ with a = √5, whose gain
/// √(2/(1+a²)) = √(1/3) times √3/√fanIn gives 1/√fanIn) and of its default bias init.
func defaultInitBound(fanIn: Int) -> Float { 1 / Float(fanIn).squareRoot() }

/// A tensor of `shape` with values U(−bound, bound) drawn from `rng` in row-major order.
func uniformTensor(_ shape: [Int], bound: Float, rng: inout SeededRNG) -> Tensor {
    let n = shape.reduce(1, *)
    var data = [Float](repeating: 0, count: n)
    for i in 0..<n { data[i] = rng.uniform(-bound, bound) }
    return Tensor(shape: shape, data: data)
}
