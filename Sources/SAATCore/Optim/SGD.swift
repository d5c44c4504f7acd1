/// Stochastic gradient descent with momentum and L2 weight decay, as `torch.optim.SGD`
/// (dampening 0, no Nesterov):
///   g ← ∇θ + wd·θ;  v ← μ·v + g (v ← g on the first step);  θ ← θ − lr·v   (μ = 0: θ ← θ − lr·g).
public final class SGD: Optimizer {
    public let params: [Param]
    public var learningRate: Float
    public let momentum: Float
    public let weightDecay: Float
    private var velocity: [[Float]]
    private var started = false

    public init(params: [Param], learningRate: Float, momentum: Float = 0, weightDecay: Float = 0) throws {
        try require(learningRate.isFinite && learningRate > 0, "lr", "a finite learning rate > 0, got \(learningRate)")
        try require(momentum.isFinite && momentum >= 0 && momentum < 1, "momentum", "a value in [0, 1), got \(momentum)")
        try require(weightDecay.isFinite && weightDecay >= 0, "weight_decay", "a finite value ≥ 0, got \(weightDecay)")
        self.params = params
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.velocity = momentum > 0 ? params.map { [Float](repeating: 0, count: $0.value.count) } : []
    }

    public func step() {
        let lr = learningRate, wd = weightDecay, mu = momentum, first = !started
        for (pi, p) in params.enumerated() {
            let n = p.value.count
            p.value.data.withUnsafeMutableBufferPointer { th in
                p.grad.data.withUnsafeBufferPointer { g in
                    if mu > 0 {
                        velocity[pi].withUnsafeMutableBufferPointer { v in
                            for i in 0..<n {
                                let gi = g[i] + wd * th[i]
                                v[i] = first ? gi : mu * v[i] + gi
                                th[i] -= lr * v[i]
                            }
                        }
                    } else {
                        for i in 0..<n { th[i] -= lr * (g[i] + wd * th[i]) }
                    }
                }
            }
        }
        started = true
    }

    public func saveState() -> [String: Tensor] {
        var s: [String: Tensor] = ["started": Tensor(shape: [1], data: [started ? 1 : 0])]
        for (i, v) in velocity.enumerated() { s["velocity.\(i)"] = Tensor(shape: [v.count], data: v) }
        return s
    }

    public func loadState(_ state: [String: Tensor]) throws {
        guard let st = state["started"], st.count == 1 else { throw SAATError.corrupt("optimizer", "SGD state without 'started'") }
        var v: [[Float]] = []
        for i in 0..<velocity.count {
            guard let t = state["velocity.\(i)"], t.count == params[i].value.count else {
                throw SAATError.corrupt("optimizer", "SGD momentum buffer \(i) missing or mis-sized")
            }
            v.append(t.data)
        }
        velocity = v
        started = st.data[0] != 0
    }
}
