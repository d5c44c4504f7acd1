#if canImport(Glibc)
import Glibc
#endif

/// Adam as `torch.optim.Adam` (L2 weight decay added to the gradient, bias-corrected moments):
///   g ← ∇θ + wd·θ; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
///   θ ← θ − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε).
/// ATRDH, THA and SDHA use it (β = (0.5, 0.999) for ATRDH/THA's prototype network).
public final class Adam: Optimizer {
    public let params: [Param]
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    private var m: [[Float]]
    private var v: [[Float]]
    private var t = 0

    public init(params: [Param], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0) throws {
        try require(learningRate.isFinite && learningRate > 0, "lr", "a finite learning rate > 0, got \(learningRate)")
        try require(beta1 >= 0 && beta1 < 1, "beta1", "a value in [0, 1), got \(beta1)")
        try require(beta2 >= 0 && beta2 < 1, "beta2", "a value in [0, 1), got \(beta2)")
        try require(weightDecay.isFinite && weightDecay >= 0, "weight_decay", "a finite value ≥ 0, got \(weightDecay)")
        self.params = params
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = params.map { [Float](repeating: 0, count: $0.value.count) }
        v = m
    }

    public func step() {
        t += 1
        let b1 = beta1, b2 = beta2, wd = weightDecay, e = eps
        let c1 = 1 - powf(b1, Float(t)), c2 = 1 - powf(b2, Float(t))
        let stepSize = learningRate / c1, invSqrtC2 = 1 / c2.squareRoot()
        for (pi, p) in params.enumerated() {
            let n = p.value.count
            p.value.data.withUnsafeMutableBufferPointer { th in
                p.grad.data.withUnsafeBufferPointer { g in
                    m[pi].withUnsafeMutableBufferPointer { mp in
                        v[pi].withUnsafeMutableBufferPointer { vp in
                            for i in 0..<n {
                                let gi = g[i] + wd * th[i]
                                mp[i] = b1 * mp[i] + (1 - b1) * gi
                                vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                                th[i] -= stepSize * mp[i] / (vp[i].squareRoot() * invSqrtC2 + e)
                            }
                        }
                    }
                }
            }
        }
    }

    public func saveState() -> [String: Tensor] {
        var s: [String: Tensor] = ["t": Tensor(shape: [1], data: [Float(t)])]
        for i in 0..<m.count {
            s["m.\(i)"] = Tensor(shape: [m[i].count], data: m[i])
            s["v.\(i)"] = Tensor(shape: [v[i].count], data: v[i])
        }
        return s
    }

    public func loadState(_ state: [String: Tensor]) throws {
        guard let tt = state["t"], tt.count == 1 else { throw SAATError.corrupt("optimizer", "Adam state without 't'") }
        var nm: [[Float]] = [], nv: [[Float]] = []
        for i in 0..<m.count {
            guard let a = state["m.\(i)"], let b = state["v.\(i)"], a.count == m[i].count, b.count == v[i].count else {
                throw SAATError.corrupt("optimizer", "Adam moments \(i) missing or mis-sized")
            }
            nm.append(a.data); nv.append(b.data)
        }
        m = nm; v = nv; t = Int(tt.data[0])
    }
}
