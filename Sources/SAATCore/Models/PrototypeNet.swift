#if canImport(Glibc)
import Glibc
#endif

/// The label → code prototype network of THA and ATRDH (Wang et al., SIGIR 2021; official code
/// xunguangwang/Targeted-Attack-and-Defense-for-Deep-Hashing, re-implemented in SAAT `tha.py`):
/// y ∈ {0,1}^C → FC(C, 4096) → ReLU → FC(4096, 512) → FC(512, K) → tanh.
///
/// Trained on label vectors against the training codes with the circle loss
///   L = softplus(logsumexp_{neg}(a_n s_n) + logsumexp_{pos}(−a_p s_p)) / B + Σ(sign(p) − p)² / (10⁴·B)
/// where s = p·b_jᵀ/K over all (batch item, training item) pairs, positive pairs share a label,
/// a_p = max(2 − s_p, 0), a_n = max(s_n + 2, 0) held constant (γ = 1, no margin), as in
/// `notes/method.md` §4. Deviation: the official code restricts pairs to the upper triangle of the
/// B×N matrix (a quirk); here every pair counts.
public final class PrototypeNet {
    public let classes: Int
    public let bits: Int
    let layers: [Layer]
    public let optimizer: Adam
    private var lastOut: Tensor?
    // Allocated after every throwing step of init (a throwing init runs no deinit; found by ASan).
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init(classes: Int, bits: Int, seed: UInt64, learningRate: Float = 1e-4) throws {
        try require(classes >= 1, "classes", "≥ 1 label column")
        try require(bits >= 1, "bits", "≥ 1")
        self.classes = classes
        self.bits = bits
        var rng = SeededRNG(seed: seed &+ 0x9807_0000)
        layers = [Linear(inFeatures: classes, outFeatures: 4096, rng: &rng), ReLU(),
                  Linear(inFeatures: 4096, outFeatures: 512, rng: &rng),
                  Linear(inFeatures: 512, outFeatures: bits, rng: &rng)]
        optimizer = try Adam(params: layers.flatMap { $0.params }, learningRate: learningRate, beta1: 0.5, beta2: 0.999)
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public var params: [Param] { layers.flatMap { $0.params } }

    /// p = P(y) ∈ (−1, 1)^{B×K}; caches for `backward`.
    public func forward(_ y: Tensor) -> Tensor {
        var h = y
        for l in layers { h = l.forward(h, mode: .train) }
        for i in 0..<h.count { h.data[i] = tanhf(h.data[i]) }
        lastOut = h
        return h
    }

    /// Accumulates parameter gradients for ∂L/∂p.
    public func backward(_ gradOut: Tensor) {
        guard let p = lastOut else { preconditionFailure("PrototypeNet.backward before forward") }
        var g = gradOut
        for i in 0..<g.count { g.data[i] *= 1 - p.data[i] * p.data[i] }
        for l in layers.reversed() { g = l.backward(g, paramGrads: true) }
    }

    /// Target codes sign(P(y)) (0 → +1) for label rows y. Safe to call from several threads (a
    /// THA attack object may be shared): the forward caches are guarded by a mutex.
    public func codes(_ y: Tensor) -> Tensor {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var p = forward(y)
        for i in 0..<p.count { p.data[i] = p.data[i] >= 0 ? 1 : -1 }
        return p
    }

    /// Circle loss + quantisation of a batch of label vectors `y` (B×C) against the training
    /// codes (N×K, ±1) and labels (N×C). Returns the loss and ∂L/∂p.
    /// `weightsAt`: outputs at which the (detached) weights a_p, a_n are evaluated; nil = `p`
    /// (training). A gradient check passes the unperturbed outputs so a stays constant.
    public static func circleLoss(p: Tensor, y: Tensor, trainCodes: Tensor, trainLabels: Tensor,
                                  weightsAt: Tensor? = nil) -> (Double, Tensor) {
        let b = p.batch, k = p.shape[1], n = trainCodes.batch, c = y.shape[1]
        func similarities(_ q: Tensor) -> Tensor {
            var s = Tensor(zeros: [b, n])
            q.data.withUnsafeBufferPointer { pp in trainCodes.data.withUnsafeBufferPointer { tc in
                s.data.withUnsafeMutableBufferPointer { sp in
                    BLAS.sgemm(transB: true, m: b, n: n, k: k, alpha: 1 / Float(k), a: pp.baseAddress!, lda: k,
                               b: tc.baseAddress!, ldb: k, c: sp.baseAddress!, ldc: n)
                } } }
            return s
        }
        let s = similarities(p)
        let sw = weightsAt.map(similarities) ?? s
        var sim = Tensor(zeros: [b, n])
        y.data.withUnsafeBufferPointer { yp in trainLabels.data.withUnsafeBufferPointer { tl in
            sim.data.withUnsafeMutableBufferPointer { sp in
                BLAS.sgemm(transB: true, m: b, n: n, k: c, a: yp.baseAddress!, lda: c,
                           b: tl.baseAddress!, ldb: c, c: sp.baseAddress!, ldc: n)
            } } }
        // logits: positives −a_p s_p, negatives a_n s_n; two log-sum-exps over all pairs.
        // Detached weights a_p = max(2 − s_p, 0), a_n = max(s_n + 2, 0).
        var a = [Double](repeating: 0, count: b * n)
        for i in 0..<(b * n) {
            let w = Double(sw.data[i])
            a[i] = sim.data[i] > 0 ? max(2 - w, 0) : max(w + 2, 0)
        }
        var maxP = -Double.infinity, maxN = -Double.infinity
        for i in 0..<(b * n) {
            let v = Double(s.data[i])
            if sim.data[i] > 0 { maxP = max(maxP, -a[i] * v) } else { maxN = max(maxN, a[i] * v) }
        }
        var sumP = 0.0, sumN = 0.0
        for i in 0..<(b * n) {
            let v = Double(s.data[i])
            if sim.data[i] > 0 { sumP += exp(-a[i] * v - maxP) } else { sumN += exp(a[i] * v - maxN) }
        }
        let lseP = sumP > 0 ? maxP + log(sumP) : -Double.infinity
        let lseN = sumN > 0 ? maxN + log(sumN) : -Double.infinity
        var gS = Tensor(zeros: [b, n])
        var loss = 0.0
        if lseP.isFinite || lseN.isFinite {
            let z = (lseP.isFinite ? lseP : 0) + (lseN.isFinite ? lseN : 0)
            let softplus = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))
            let dz = 1 / (1 + exp(-z))
            loss = softplus / Double(b)
            for i in 0..<(b * n) {
                let v = Double(s.data[i])
                if sim.data[i] > 0 {
                    gS.data[i] = Float(dz * exp(-a[i] * v - lseP) * (-a[i]) / Double(b))
                } else {
                    gS.data[i] = Float(dz * exp(a[i] * v - lseN) * a[i] / Double(b))
                }
            }
        }
        // ∂L/∂p = (∂L/∂S) · B_train / K, plus the quantisation term.
        var gp = Tensor(zeros: [b, k])
        gS.data.withUnsafeBufferPointer { gs in trainCodes.data.withUnsafeBufferPointer { tc in
            gp.data.withUnsafeMutableBufferPointer { o in
                BLAS.sgemm(m: b, n: k, k: n, alpha: 1 / Float(k), a: gs.baseAddress!, lda: n,
                           b: tc.baseAddress!, ldb: k, c: o.baseAddress!, ldc: k)
            } } }
        var q = 0.0
        let qs = 1 / (1e4 * Float(b))
        for i in 0..<(b * k) {
            let v = p.data[i], sg: Float = v > 0 ? 1 : (v < 0 ? -1 : 0)
            q += Double((sg - v) * (sg - v))
            gp.data[i] += -2 * (sg - v) * qs
        }
        return (loss + q * Double(qs), gp)
    }

    /// One Adam step of the circle loss on label rows `y`.
    @discardableResult
    public func trainStep(y: Tensor, trainCodes: Tensor, trainLabels: Tensor) -> Double {
        for p in params { p.grad.zero() }
        let out = forward(y)
        let (l, g) = PrototypeNet.circleLoss(p: out, y: y, trainCodes: trainCodes, trainLabels: trainLabels)
        backward(g)
        optimizer.step()
        return l
    }

    public func saveState() -> [String: Tensor] {
        var s: [String: Tensor] = [:]
        for (i, p) in params.enumerated() { s["param.\(i)"] = p.value }
        for (k, v) in optimizer.saveState() { s["adam/\(k)"] = v }
        return s
    }

    public func loadState(_ s: [String: Tensor]) throws {
        for (i, p) in params.enumerated() {
            guard let t = s["param.\(i)"], t.shape == p.value.shape else { throw SAATError.corrupt("checkpoint", "prototype net parameter \(i)") }
            p.value = t
        }
        var o: [String: Tensor] = [:]
        for (k, v) in s where k.hasPrefix("adam/") { o[String(k.dropFirst(5))] = v }
        try optimizer.loadState(o)
    }
}
