import HashKernels

/// A layer whose weight `SpectralNorm` can normalise (Conv2d, Linear, ConvTranspose2d).
public protocol SpectralNormalizable: Layer {
    var weight: Param { get }
    /// The `dim` that `torch.nn.utils.spectral_norm` picks by default: the output-channel axis of
    /// the weight, 1 for transposed convolutions (weight (C_in, C_out, k, k)), else 0.
    static var spectralNormDim: Int { get }
}

extension Conv2d: SpectralNormalizable { public static var spectralNormDim: Int { 0 } }
extension Linear: SpectralNormalizable { public static var spectralNormDim: Int { 0 } }
extension ConvTranspose2d: SpectralNormalizable { public static var spectralNormDim: Int { 1 } }

/// Spectral normalisation of a layer's weight, as `torch.nn.utils.spectral_norm(module,
/// n_power_iterations, eps = 1e-12, dim)` (the hook version).
///
/// The weight W (parameter "weight_orig") is read as the matrix W_mat (h, w): axis `dim`
/// permuted to the front, the other axes flattened in order (h = W.shape[dim]). Buffers "weight_u"
/// (h) and "weight_v" (w) persist across calls. Every forward in train mode first runs
/// `powerIterations` steps v ← normalize(W_matᵀ·u), u ← normalize(W_mat·v), with
/// normalize(z) = z / max(‖z‖₂, eps); eval mode runs none. Then σ = uᵀ·W_mat·v and the wrapped
/// layer runs with the weight W/σ. Backward, as PyTorch's autograd (u, v are constants of the
/// graph): with G = ∂L/∂(W/σ), ∂L/∂W = G/σ − (⟨G, W⟩/σ²)·u·vᵀ (in W_mat's layout), since
/// ∂σ/∂W_mat = u·vᵀ. Other parameters of the wrapped layer (its bias) are its own, unchanged.
///
/// Initialisation (as PyTorch's): u = normalize(N(0, 1)^h), v = normalize(N(0, 1)^w), drawn from
/// `SeededRNG(seed:)` (u first, then v; PyTorch's generator differs, so the values differ from
/// torch's for the same seed, the distribution is the same). weight_orig starts as the wrapped
/// layer's weight.
///
/// Numerics: the power iteration, σ and W/σ are computed in float64 from the float32 W, u, v; u
/// and v are stored in float32 (PyTorch's buffer type), W/σ rounded once to float32 into the
/// wrapped layer's weight, whose `grad` serves as scratch for G (zero outside `backward`).
///
/// State (`stateDict`, PyTorch's names and order): the wrapped layer's other parameters
/// ("bias"), "weight_orig", "weight_u", "weight_v".
public final class SpectralNorm: Layer {
    public let layer: any SpectralNormalizable
    public let dim: Int
    public let powerIterations: Int
    public let eps: Double
    /// "weight_orig": the unnormalised weight, the parameter that is trained.
    public let weightOrig: Param
    /// "weight_u" (h) and "weight_v" (w).
    public private(set) var u: Tensor
    public private(set) var v: Tensor
    /// σ of the last forward (nil before the first).
    public private(set) var sigma: Double?
    /// Row and column in W_mat of every weight element (row-major weight order).
    private let rowOf: [Int32], colOf: [Int32]
    /// The W of the last forward (the backward's ⟨G, W⟩ uses it).
    private var forwardWeight: Tensor?

    /// Rows h and columns w of W_mat.
    public var matrixShape: (rows: Int, cols: Int) { (u.count, v.count) }

    public init(_ layer: any SpectralNormalizable, seed: UInt64, dim: Int? = nil, powerIterations: Int = 1,
                eps: Double = 1e-12) {
        let shape = layer.weight.value.shape
        let d = dim ?? type(of: layer).spectralNormDim
        precondition(d >= 0 && d < shape.count, "SpectralNorm: dim \(d) out of range for weight \(shape)")
        precondition(powerIterations > 0, "SpectralNorm: powerIterations must be positive, got \(powerIterations)")
        precondition(eps > 0, "SpectralNorm: eps must be positive")
        self.layer = layer; self.dim = d; self.powerIterations = powerIterations; self.eps = eps
        let count = shape.reduce(1, *), h = shape[d], w = count / h
        let inner = shape[(d + 1)...].reduce(1, *)   // elements per step of axis d
        var rows = [Int32](repeating: 0, count: count), cols = rows
        for f in 0..<count {
            let outer = f / (inner * h), r = (f / inner) % h, rest = f % inner
            rows[f] = Int32(r); cols[f] = Int32(outer * inner + rest)
        }
        rowOf = rows; colOf = cols
        weightOrig = Param("weight_orig", layer.weight.value)
        var rng = SeededRNG(seed: seed)
        let u0 = (0..<h).map { _ in Double(rng.normal()) }
        let v0 = (0..<w).map { _ in Double(rng.normal()) }
        u = Tensor(shape: [h], data: SpectralNorm.normalized(u0, eps: eps).map(Float.init))
        v = Tensor(shape: [w], data: SpectralNorm.normalized(v0, eps: eps).map(Float.init))
    }

    static func normalized(_ z: [Double], eps: Double) -> [Double] {
        let norm = z.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let s = 1 / max(norm, eps)
        return z.map { $0 * s }
    }

    /// The wrapped layer's parameters other than its weight, then "weight_orig" (PyTorch's order).
    public var params: [Param] { layer.params.filter { $0 !== layer.weight } + [weightOrig] }

    public var buffers: [(String, Tensor)] { [("weight_u", u), ("weight_v", v)] }

    public func stateDict() -> [(String, Tensor)] { params.map { ($0.name, $0.value) } + buffers }

    /// Loads every entry of `stateDict()` (names and shapes must match, values finite; u and v
    /// nonzero). Takes effect at the next forward.
    public func loadStateDict(_ dict: [String: Tensor], argument: String = "state") throws {
        let expected = stateDict()
        for (name, t) in expected {
            guard let new = dict[name] else { throw SAATError.invalidArgument(argument, "an entry '\(name)'") }
            guard new.shape == t.shape else {
                throw SAATError.invalidArgument(argument, "'\(name)' of shape \(t.shape), got \(new.shape)")
            }
            guard new.allFinite else { throw SAATError.invalidArgument(argument, "finite values in '\(name)'") }
        }
        let unexpected = Set(dict.keys).subtracting(expected.map { $0.0 })
        guard unexpected.isEmpty else {
            throw SAATError.invalidArgument(argument, "no entries besides \(expected.map { $0.0 }), got \(unexpected.sorted())")
        }
        for p in params { p.value = dict[p.name]! }
        u = dict["weight_u"]!
        v = dict["weight_v"]!
        sigma = nil
    }

    public func outputShape(_ input: [Int]) -> [Int] { layer.outputShape(input) }

    /// W_mat·v (h) and W_matᵀ·u (w) in float64.
    private func products(_ w: [Float], u: [Double], v: [Double]) -> (wv: [Double], wtu: [Double]) {
        var wv = [Double](repeating: 0, count: u.count), wtu = [Double](repeating: 0, count: v.count)
        for f in 0..<w.count {
            let r = Int(rowOf[f]), c = Int(colOf[f]), x = Double(w[f])
            wv[r] += x * v[c]; wtu[c] += x * u[r]
        }
        return (wv, wtu)
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        let w = weightOrig.value.data
        if mode == .train {
            var uu = u.data.map(Double.init)
            var vv = v.data
            for _ in 0..<powerIterations {
                let (_, wtu) = products(w, u: uu, v: [Double](repeating: 0, count: v.count))
                vv = SpectralNorm.normalized(wtu, eps: eps).map(Float.init)
                let (wv, _) = products(w, u: [Double](repeating: 0, count: u.count), v: vv.map(Double.init))
                uu = SpectralNorm.normalized(wv, eps: eps).map { Double(Float($0)) }
            }
            u = Tensor(shape: u.shape, data: uu.map(Float.init))
            v = Tensor(shape: v.shape, data: vv)
        }
        let ud = u.data.map(Double.init), vd = v.data.map(Double.init)
        let (wv, _) = products(w, u: ud, v: vd)
        var s = 0.0
        for i in 0..<ud.count { s += ud[i] * wv[i] }
        sigma = s
        layer.weight.value = Tensor(shape: weightOrig.value.shape, data: w.map { Float(Double($0) / s) })
        forwardWeight = weightOrig.value
        return layer.forward(x, mode: mode)
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let s = sigma, let w = forwardWeight else { preconditionFailure("SpectralNorm.backward before forward") }
        guard paramGrads else { return layer.backward(dy, paramGrads: false) }
        layer.weight.grad.zero()
        let dx = layer.backward(dy, paramGrads: true)
        let g = layer.weight.grad.data
        var c = 0.0   // ⟨G, W⟩
        for f in 0..<g.count { c += Double(g[f]) * Double(w.data[f]) }
        let k = c / (s * s)
        weightOrig.grad.data.withUnsafeMutableBufferPointer { gp in
            u.data.withUnsafeBufferPointer { up in
                v.data.withUnsafeBufferPointer { vp in
                    for f in 0..<g.count {
                        let outer = Double(up[Int(rowOf[f])]) * Double(vp[Int(colOf[f])])
                        gp[f] += Float(Double(g[f]) / s - k * outer)
                    }
                }
            }
        }
        layer.weight.grad.zero()
        return dx
    }
}
