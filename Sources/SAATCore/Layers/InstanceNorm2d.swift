import HashKernels

/// Instance normalisation, as `torch.nn.InstanceNorm2d(channels, eps, affine:)` with PyTorch's
/// defaults (no running statistics: instance statistics in train and eval mode alike).
///
/// For every image n and channel c, over the M = H·W values of the plane:
/// μ = (1/M)·Σ x, σ² = (1/M)·Σ (x − μ)² (biased), r = 1/√(σ² + eps), x̂ = (x − μ)·r,
/// y = x̂ (or γ[c]·x̂ + β[c] with `affine`: parameters "weight" γ, initialised to 1, and "bias" β,
/// initialised to 0, PyTorch's names and initial values).
/// Backward with g = ∂y·γ: ∂x = r·(g − mean(g) − x̂·mean(g·x̂)); ∂γ += Σ_{n,h,w} ∂y·x̂,
/// ∂β += Σ_{n,h,w} ∂y.
///
/// Method: every plane is computed in float64 (two passes: mean, then the centred sum of
/// squares) and each output rounded once to float32, so an output is within one float32 rounding
/// of the exact value plus a float64-sized error (no float32 cancellation in the variance);
/// planes are split over the kernels' threads, so values do not depend on the thread count.
/// The forward caches the input and each plane's μ and r (float64); the backward recomputes x̂.
/// ∂γ, ∂β: per-plane float64 sums, added over the images in order in float64, rounded once and
/// added to `Param.grad`.
public final class InstanceNorm2d: Layer {
    public let channels: Int
    public let eps: Double
    public let affine: Bool
    /// "weight" γ and "bias" β (nil unless `affine`).
    public let weight: Param?
    public let bias: Param?
    private var input: Tensor?
    private var mean: [Double] = []
    private var rstd: [Double] = []

    public init(channels: Int, eps: Double = 1e-5, affine: Bool = false) {
        precondition(channels > 0, "InstanceNorm2d: channels must be positive")
        precondition(eps >= 0 && eps.isFinite, "InstanceNorm2d: eps must be finite and ≥ 0")
        self.channels = channels; self.eps = eps; self.affine = affine
        weight = affine ? Param("weight", Tensor(repeating: 1, shape: [channels])) : nil
        bias = affine ? Param("bias", Tensor(zeros: [channels])) : nil
    }

    public var params: [Param] { affine ? [weight!, bias!] : [] }

    public func outputShape(_ input: [Int]) -> [Int] {
        precondition(input.count == 3 && input[0] == channels,
                     "InstanceNorm2d: expected item shape [\(channels), H, W], got \(input)")
        return input
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == channels,
                     "InstanceNorm2d: expected input (N, \(channels), H, W), got \(x.shape)")
        let planes = x.shape[0] * channels, M = x.shape[2] * x.shape[3], C = channels
        var y = Tensor(uninitialized: x.shape)
        mean = [Double](repeating: 0, count: planes)
        rstd = [Double](repeating: 0, count: planes)
        let gamma = weight?.value.data ?? [], beta = bias?.value.data ?? []
        if planes > 0 && M > 0 {
            x.data.withUnsafeBufferPointer { xp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    mean.withUnsafeMutableBufferPointer { mp in
                        rstd.withUnsafeMutableBufferPointer { rp in
                            let xa = xp.baseAddress!, ya = yp.baseAddress!, ma = mp.baseAddress!, ra = rp.baseAddress!
                            ParallelFor.split(count: planes) { _, range in
                                for q in range {
                                    let src = xa + q * M, dst = ya + q * M
                                    var s = 0.0
                                    for i in 0..<M { s += Double(src[i]) }
                                    let mu = s / Double(M)
                                    var ss = 0.0
                                    for i in 0..<M { let d = Double(src[i]) - mu; ss += d * d }
                                    let r = 1 / (ss / Double(M) + eps).squareRoot()
                                    ma[q] = mu; ra[q] = r
                                    let c = q % C
                                    let ga = affine ? Double(gamma[c]) : 1, be = affine ? Double(beta[c]) : 0
                                    for i in 0..<M { dst[i] = Float((Double(src[i]) - mu) * r * ga + be) }
                                }
                            }
                        }
                    }
                }
            }
        }
        input = x
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("InstanceNorm2d.backward before forward") }
        precondition(dy.shape == x.shape, "InstanceNorm2d.backward: expected dy \(x.shape), got \(dy.shape)")
        let n = x.shape[0], C = channels, planes = n * C, M = x.shape[2] * x.shape[3]
        var dx = Tensor(uninitialized: x.shape)
        let wantParams = paramGrads && affine
        var dGamma = [Double](repeating: 0, count: wantParams ? planes : 0)
        var dBeta = dGamma
        let gamma = weight?.value.data ?? []
        if planes > 0 && M > 0 {
            x.data.withUnsafeBufferPointer { xp in
                dy.data.withUnsafeBufferPointer { dp in
                    dx.data.withUnsafeMutableBufferPointer { dxp in
                        dGamma.withUnsafeMutableBufferPointer { gp in
                            dBeta.withUnsafeMutableBufferPointer { bp in
                                let xa = xp.baseAddress!, da = dp.baseAddress!, dxa = dxp.baseAddress!
                                let dga = gp.baseAddress, dba = bp.baseAddress
                                ParallelFor.split(count: planes) { _, range in
                                    for q in range {
                                        let src = xa + q * M, d = da + q * M, out = dxa + q * M
                                        let mu = mean[q], r = rstd[q]
                                        let ga = affine ? Double(gamma[q % C]) : 1
                                        var s1 = 0.0, s2 = 0.0   // Σ ∂y, Σ ∂y·x̂
                                        for i in 0..<M {
                                            let dv = Double(d[i])
                                            s1 += dv; s2 += dv * ((Double(src[i]) - mu) * r)
                                        }
                                        if wantParams { dga![q] = s2; dba![q] = s1 }
                                        let m1 = ga * s1 / Double(M), m2 = ga * s2 / Double(M)
                                        for i in 0..<M {
                                            let xh = (Double(src[i]) - mu) * r
                                            out[i] = Float(r * (ga * Double(d[i]) - m1 - xh * m2))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if wantParams {
            for (p, sums) in [(weight!, dGamma), (bias!, dBeta)] {
                for c in 0..<C {
                    var s = 0.0
                    for img in 0..<n { s += sums[img * C + c] }
                    p.grad.data[c] += Float(s)
                }
            }
        }
        return dx
    }
}
