#if canImport(Glibc)
import Glibc
#endif

/// A deep hashing network F(x; α) = tanh(α · g(x)) ∈ (−1, 1)^K on images x ∈ [0,1]^{C×H×W}.
///
/// g is a backbone (see `Backbone`) ending in a K-unit linear hash layer; the per-channel input
/// normalisation (x − mean)/std happens inside, so attacks clamp in [0,1] pixel space (SAAT/CgAT
/// `model/backbone.py`). Binary codes are b = sign(F(x)) with sign(0) = +1 (documented deviation
/// from torch.sign, which gives 0; an exact 0 output has probability ~0 with float inputs).
///
/// Batches use NCHW. `forward` caches activations for the *last* call so `backward` can return
/// ∂L/∂x; `inputGradient` combines both for arbitrarily many images in internal chunks.
///
/// Thread safety: every public entry point of the bridge takes `lock` (a mutex) for the whole
/// call, so concurrent calls on one model are serialised; the model itself is not re-entrant.
public final class HashingModel {
    public let backbone: Backbone
    public let bits: Int
    public let seed: UInt64
    /// Per-channel normalisation (x − mean)/std applied to the input.
    public var mean: [Float]
    public var std: [Float]
    public var mode: Mode = .eval
    public private(set) var layers: [(name: String, layer: Layer)]

    /// Runs each conv → ReLU (→ max-pool) run of layers as one fused block
    /// (`Conv2d.forwardBlock`/`backwardBlock`: ReLU and pooling per image while the convolution
    /// output is in cache, and the ReLU/pool gradients folded into the convolution's backward).
    /// Same values as the layer-by-layer path (tested); `false` runs the layers one by one.
    /// Change it only between a forward and its backward's completion, never in between.
    public var fuseBlocks = true

    /// How `forward`/`backward` walk the layers: single layers, or fused conv blocks
    /// (indices of the conv and of its pool, when there is one).
    private enum Step { case layer(Int), block(conv: Int, pool: Int?) }
    private var fusedPlan: [Step] = []
    private var lastPlanFused = true

    private static func makePlan(_ layers: [(name: String, layer: Layer)]) -> [Step] {
        var plan: [Step] = []
        var i = 0
        while i < layers.count {
            if layers[i].layer is Conv2d, i + 1 < layers.count, layers[i + 1].layer is ReLU {
                let pool = i + 2 < layers.count && layers[i + 2].layer is MaxPool2d ? i + 2 : nil
                plan.append(.block(conv: i, pool: pool))
                i += pool == nil ? 2 : 3
            } else {
                plan.append(.layer(i))
                i += 1
            }
        }
        return plan
    }

    /// Set when a diverged training left NaN/inf weights (`checkWeightsAfterDivergence`); cleared by
    /// `loadStateDict`. Forward passes and attacks refuse such a model (`requireFiniteWeights`).
    public private(set) var hasNonFiniteWeights = false

    /// Rescans the weights after a training stopped on a non-finite loss.
    public func checkWeightsAfterDivergence() {
        hasNonFiniteWeights = params.contains { !$0.value.allFinite }
    }

    /// Throws naming `model` when its weights are not finite (a diverged training).
    public func requireFiniteWeights() throws {
        try require(!hasNonFiniteWeights, "model",
                    "finite weights; this model's are NaN/inf because a training diverged (lower 'lr'): "
                    + "load finite weights with load_state_dict or resume from a checkpoint")
    }

    /// Bytes of the activations of one image in a forward pass: 4 × (input + every layer's output).
    public private(set) lazy var activationBytesPerImage: Int = {
        var shape = inputShape, floats = inputShape.reduce(1, *)
        for l in layers {
            shape = l.layer.outputShape(shape)
            floats += shape.reduce(1, *)
        }
        return 4 * floats
    }()

    /// Memory the chunked loops (`predict`, `inputGradient`, attacks) may use for one chunk's
    /// activations (and, with gradients, as much again for theirs): 1 GiB. cnn-small then runs 256
    /// images per chunk, alexnet 116 (gradients) to 233, vgg11 8 to 17.
    public static let chunkBudgetBytes = 1 << 30

    /// The machine's physical memory (bounds the batch sizes the training loops accept).
    public static var physicalMemoryBytes: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? pages * size : 1 << 34
    }

    /// Images per chunk so one chunk's activations (with `gradients`, also their gradients) fit
    /// in `chunkBudgetBytes`; at least 1, at most 256.
    public func imagesPerChunk(gradients: Bool) -> Int {
        let perImage = activationBytesPerImage * (gradients ? 2 : 1)
        return max(1, min(256, Self.chunkBudgetBytes / max(1, perImage)))
    }

    // Caches of the last forward pass.
    private var lastOutput: Tensor?
    private var lastAlpha: Float = 1
    private var lastInputShape: [Int] = []

    // Allocated as the last step of init, after every check that can throw (a throwing init
    // runs no deinit, so an earlier allocation leaked on every rejected argument; found by ASan).
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// Builds a freshly initialised model. Weights: PyTorch-default uniform init drawn from a
    /// `SeededRNG(seed)` in layer order; hash layer N(0, 0.01), bias 0.
    public init(backbone: Backbone, bits: Int, seed: UInt64 = 0,
                mean: [Float]? = nil, std: [Float]? = nil) throws {
        try require(bits >= 1 && bits <= 4096, "bits", "a code length in 1...4096, got \(bits)")
        let m = mean ?? backbone.defaultMean, s = std ?? backbone.defaultStd
        try require(m.count == backbone.inputShape[0] && m.allSatisfy(\.isFinite), "mean",
                    "\(backbone.inputShape[0]) finite values")
        try require(s.count == backbone.inputShape[0] && s.allSatisfy { $0.isFinite && $0 > 0 }, "std",
                    "\(backbone.inputShape[0]) finite positive values")
        self.backbone = backbone
        self.bits = bits
        self.seed = seed
        self.mean = m
        self.std = s
        var rng = SeededRNG(seed: seed)
        self.layers = backbone.makeLayers(bits: bits, rng: &rng, seed: seed).map { (name: $0.0, layer: $0.1) }
        self.fusedPlan = Self.makePlan(layers)
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` holding the model's mutex (blocking), with OpenBLAS pinned to one thread
    /// (`BLAS.singleThreaded`): the network kernels share the cores out themselves
    /// (`ParallelFor.split`), and a multi-threaded sgemm in between (a loss, the guide codes)
    /// would leave OpenBLAS's workers spinning for ~0.1 s into the next kernel, on the same cores.
    /// Call it without holding the GIL.
    public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try BLAS.singleThreaded(body)
    }

    public var inputShape: [Int] { backbone.inputShape }

    /// Named parameters in PyTorch `state_dict` order ("features.0.weight", …).
    public var namedParams: [(name: String, param: Param)] {
        layers.flatMap { l in l.layer.params.map { (name: "\(l.name).\($0.name)", param: $0) } }
    }

    public var params: [Param] { layers.flatMap { $0.layer.params } }

    public func zeroGrad() { for p in params { p.grad.zero() } }

    /// Checks an input batch: shape (N, C, H, W) matching the backbone and finite values.
    public func validateInput(_ shape: [Int], argument: String = "x") throws {
        try require(shape.count == 4 && Array(shape.dropFirst()) == inputShape, argument,
                    "images of shape (N, \(inputShape.map(String.init).joined(separator: ", "))), got \(shape)")
    }

    // MARK: forward / backward

    /// F(x; α) for a batch; caches activations for `backward`.
    public func forward(_ x: Tensor, alpha: Float = 1) -> Tensor {
        precondition(x.rank == 4 && Array(x.shape.dropFirst()) == inputShape, "forward: bad input shape \(x.shape)")
        var h = normalise(x)
        lastPlanFused = fuseBlocks
        if fuseBlocks {
            for step in fusedPlan {
                switch step {
                case let .layer(i): h = layers[i].layer.forward(h, mode: mode)
                case let .block(c, p):
                    h = (layers[c].layer as! Conv2d).forwardBlock(h, pool: p.map { layers[$0].layer as! MaxPool2d })
                }
            }
        } else {
            for l in layers { h = l.layer.forward(h, mode: mode) }
        }
        let n = h.batch
        precondition(h.shape == [n, bits])
        h.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = tanhf(alpha * p[i]) }
        }
        lastOutput = h
        lastAlpha = alpha
        lastInputShape = x.shape
        return h
    }

    /// ∂L/∂x (pixel space) for the last `forward`, given ∂L/∂F (N×K). Accumulates parameter
    /// gradients into `Param.grad` when `paramGrads`.
    public func backward(_ gradOut: Tensor, paramGrads: Bool) -> Tensor {
        guard let y = lastOutput else { preconditionFailure("backward before forward") }
        precondition(gradOut.shape == y.shape, "backward: gradOut \(gradOut.shape) vs output \(y.shape)")
        var g = gradOut
        let a = lastAlpha
        g.data.withUnsafeMutableBufferPointer { gp in
            y.data.withUnsafeBufferPointer { yp in
                for i in 0..<gp.count { gp[i] *= a * (1 - yp[i] * yp[i]) }
            }
        }
        if lastPlanFused {
            for step in fusedPlan.reversed() {
                switch step {
                case let .layer(i): g = layers[i].layer.backward(g, paramGrads: paramGrads)
                case let .block(c, _): g = (layers[c].layer as! Conv2d).backwardBlock(g, paramGrads: paramGrads)
                }
            }
        } else {
            for l in layers.reversed() { g = l.layer.backward(g, paramGrads: paramGrads) }
        }
        // Undo the normalisation: ∂/∂x = ∂/∂x̂ / std.
        let c = lastInputShape[1], hw = lastInputShape[2] * lastInputShape[3]
        let inv = std.map { 1 / $0 }
        g.data.withUnsafeMutableBufferPointer { p in
            for n in 0..<lastInputShape[0] {
                for ch in 0..<c {
                    let base = (n * c + ch) * hw, s = inv[ch]
                    for i in 0..<hw { p[base + i] *= s }
                }
            }
        }
        return g
    }

    private func normalise(_ x: Tensor) -> Tensor {
        if mean.allSatisfy({ $0 == 0 }) && std.allSatisfy({ $0 == 1 }) { return x }
        var out = x
        let c = x.shape[1], hw = x.shape[2] * x.shape[3]
        out.data.withUnsafeMutableBufferPointer { p in
            for n in 0..<x.shape[0] {
                for ch in 0..<c {
                    let base = (n * c + ch) * hw, m = mean[ch], s = 1 / std[ch]
                    for i in 0..<hw { p[base + i] = (p[base + i] - m) * s }
                }
            }
        }
        return out
    }

    // MARK: chunked inference over many images

    /// Runs `body(x, start)` on consecutive chunks x of the `n` images at `images` (chunks of
    /// `imagesPerChunk(gradients:)`), polling `shouldStop` between chunks; refuses a model whose
    /// weights are not finite. No activations are kept afterwards.
    private func forEachChunk(images: UnsafePointer<Float>, n: Int, gradients: Bool, shouldStop: () -> Bool,
                              _ body: (_ x: Tensor, _ start: Int) -> Void) throws {
        try requireFiniteWeights()
        let item = inputShape.reduce(1, *), chunk = imagesPerChunk(gradients: gradients)
        var start = 0
        while start < n {
            if shouldStop() { throw SAATError.interrupted }
            let m = min(chunk, n - start)
            body(Tensor(shape: [m] + inputShape, copying: images + start * item), start)
            start += m
        }
        lastOutput = nil
    }

    /// F(x; α) for `n` images read from `images` (n×C×H×W floats), written into `out` (n×K),
    /// in chunks. `shouldStop` is polled between chunks.
    public func predict(images: UnsafePointer<Float>, n: Int, alpha: Float = 1,
                        out: UnsafeMutablePointer<Float>,
                        shouldStop: () -> Bool = { false }) throws {
        try forEachChunk(images: images, n: n, gradients: false, shouldStop: shouldStop) { x, start in
            let y = forward(x, alpha: alpha)
            y.data.withUnsafeBufferPointer { (out + start * bits).update(from: $0.baseAddress!, count: y.count) }
        }
    }

    /// F(x; α) of `n` images as an n×K tensor (`predict`).
    public func outputs(images: UnsafePointer<Float>, n: Int, alpha: Float = 1,
                        shouldStop: () -> Bool = { false }) throws -> Tensor {
        var f = Tensor(zeros: [n, bits])
        try f.data.withUnsafeMutableBufferPointer {
            try predict(images: images, n: n, alpha: alpha, out: $0.baseAddress!, shouldStop: shouldStop)
        }
        return f
    }

    /// Vector–Jacobian product (∂F/∂x)ᵀ·g for `n` images: `gradOut` is n×K, result n×C×H×W.
    /// Parameter gradients are not computed.
    public func inputGradient(images: UnsafePointer<Float>, gradOut: UnsafePointer<Float>, n: Int,
                              alpha: Float = 1, out: UnsafeMutablePointer<Float>,
                              shouldStop: () -> Bool = { false }) throws {
        try forEachChunk(images: images, n: n, gradients: true, shouldStop: shouldStop) { x, start in
            _ = forward(x, alpha: alpha)
            let g = backward(Tensor(shape: [x.batch, bits], copying: gradOut + start * bits), paramGrads: false)
            g.data.withUnsafeBufferPointer { (out + start * x.itemSize).update(from: $0.baseAddress!, count: g.count) }
        }
    }

    // MARK: state dict

    /// (name, tensor) pairs in PyTorch order with PyTorch shapes.
    public func stateDict() -> [(String, Tensor)] {
        namedParams.map { ($0.name, $0.param.value) }
    }

    /// Loads parameters by name. Every parameter of the model must be present with its exact
    /// shape and finite values; unknown names are an error (strict, like PyTorch's default).
    /// `argument`: the caller's name for `dict` in errors (Python's `load_state_dict(state)`).
    public func loadStateDict(_ dict: [String: Tensor], argument: String = "state") throws {
        let named = namedParams
        let known = Set(named.map(\.name))
        for key in dict.keys.sorted() where !known.contains(key) {
            throw SAATError.invalidArgument(argument, "only parameters of a \(backbone.rawValue) \(bits)-bit model; unexpected key '\(key)'")
        }
        for (name, p) in named {
            guard let t = dict[name] else {
                throw SAATError.invalidArgument(argument, "a value for '\(name)' (missing)")
            }
            try require(t.shape == p.value.shape, argument, "'\(name)' of shape \(p.value.shape), got \(t.shape)")
            try require(t.allFinite, argument, "finite values in '\(name)'")
        }
        for (name, p) in named { p.value = dict[name]! }
        hasNonFiniteWeights = false
    }

    /// The rows of a batch its dropout layers keep (data-parallel training; see `DropoutRows`).
    public var dropoutRowSelection: DropoutRows? {
        get { layers.lazy.compactMap { $0.layer as? Dropout }.first?.rowSelection }
        set { for l in layers { (l.layer as? Dropout)?.rowSelection = newValue } }
    }

    /// Random-number states of the dropout layers (for checkpoints).
    public var dropoutStates: [[UInt64]] {
        get { layers.compactMap { ($0.layer as? Dropout)?.rng.stateWords } }
        set {
            var i = 0
            for l in layers { if let d = l.layer as? Dropout { d.rng = SeededRNG(state: newValue[i]); i += 1 } }
        }
    }
}
