#if canImport(Glibc)
import Glibc
#endif

/// The label → code prototype network of THA and ATRDH (Wang et al., SIGIR 2021; official code
/// xunguangwang/Targeted-Attack-and-Defense-for-Deep-Hashing, re-implemented in SAAT `tha.py`):
/// y ∈ {0,1}^C → FC(C, 4096) → ReLU → FC(4096, 512) → FC(512, K) → tanh.
///
/// Trained on label vectors against the training codes with the circle loss (`CircleLoss`).
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

    /// One Adam step of the circle loss on label rows `y`.
    @discardableResult
    public func trainStep(y: Tensor, trainCodes: Tensor, trainLabels: Tensor) -> Double {
        for p in params { p.grad.zero() }
        let out = forward(y)
        let (l, g) = CircleLoss.value(p: out, y: y, trainCodes: trainCodes, trainLabels: trainLabels)
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
