/// Fully connected layer, as `torch.nn.Linear(inFeatures, outFeatures)`.
///
/// y[n, o] = Σ_i x[n, i] · w[o, i] + b[o]; x row-major (N, in), weight w (out, in), bias b (out),
/// y (N, out). Backward with δ = ∂L/∂y: ∂x = δ·W (N, in); ∂W += δᵀ·x (out, in); ∂b += Σ_n δ[n, ·].
/// Three sgemm calls (OpenBLAS), no per-row loops.
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

    public func outputShape(_ input: [Int]) -> [Int] {
        precondition(input == [inFeatures], "Linear: expected item shape [\(inFeatures)], got \(input)")
        return [outFeatures]
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == inFeatures,
                     "Linear: expected input (N, \(inFeatures)), got \(x.shape)")
        let n = x.shape[0], I = inFeatures, O = outFeatures
        var y = Tensor(uninitialized: [n, O])   // sgemm with β = 0 overwrites it
        x.data.withUnsafeBufferPointer { xp in
            weight.value.data.withUnsafeBufferPointer { wp in
                bias.value.data.withUnsafeBufferPointer { bp in
                    y.data.withUnsafeMutableBufferPointer { yp in
                        guard let xa = xp.baseAddress, let ya = yp.baseAddress else { return }
                        BLAS.sgemm(transB: true, m: n, n: O, k: I, a: xa, lda: I,
                                   b: wp.baseAddress!, ldb: I, c: ya, ldc: O)
                        Elementwise.addRowVector(bp.baseAddress!, to: ya, rows: n, cols: O)
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
                    BLAS.sgemm(m: n, n: I, k: O, a: d, lda: O, b: wp.baseAddress!, ldb: I,
                               c: dxp.baseAddress!, ldc: I)
                }
            }
            if paramGrads {
                x.data.withUnsafeBufferPointer { xp in
                    weight.grad.data.withUnsafeMutableBufferPointer { gw in
                        BLAS.sgemm(transA: true, m: O, n: I, k: n, a: d, lda: O, b: xp.baseAddress!, ldb: I,
                                   beta: 1, c: gw.baseAddress!, ldc: I)
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
