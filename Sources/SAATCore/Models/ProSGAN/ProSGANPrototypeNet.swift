#if canImport(Glibc)
import Glibc
#endif
import HashKernels

/// ProS-GAN's prototype network (Wang et al., CVPR 2021; official code xunguangwang/ProS-GAN,
/// `model/module.py` `PrototypeNet`, trained by `train_prototype_net` of
/// `model/target_attack_gan.py`): a target label vector y ∈ {0,1}^C gives
/// - the feature f = feature(y), feature = Linear(C, 4096) → ReLU → Linear(4096, 512), which the
///   generator is conditioned on;
/// - the prototype code h = tanh(Linear(512, K)(f)) ("hashing");
/// - the label reconstruction c = sigmoid(Linear(512, C)(f)) ("classifier").
///
/// Loss of a batch of B label rows against the N training codes b_j (±1) and labels l_j:
/// θ_ij = ½·h_iᵀb_j, s_ij = [y_iᵀl_j > 0],
/// L = Σ_ij (softplus(θ_ij) − s_ij·θ_ij)/(N·B) + Σ_ik (sign h_ik − h_ik)²/(10⁴·B) + mean((c − y)²),
/// the DPSH likelihood, quantisation and label-reconstruction terms of the official code (sign
/// treated as a constant). Adam (lr 1e-4, β 0.5, 0.999), as the official code.
///
/// Parameters carry the official `state_dict` names: feature.0.*, feature.2.*, hashing.0.*,
/// classifier.0.* ("weight", "bias").
public final class ProSGANPrototypeNet {
    public let classes: Int
    public let bits: Int
    /// Width of the feature (512 in the official code).
    public static let featureWidth = 512
    let fc1: Linear, relu = ReLU(), fc2: Linear, hashFC: Linear, classFC: Linear
    let paths: ModulePaths
    public let optimizer: Adam
    private var cache: (h: Tensor, c: Tensor)?

    public init(classes: Int, bits: Int, seed: UInt64, learningRate: Float = 1e-4) throws {
        try require(classes >= 1, "classes", "≥ 1 label column")
        try require(bits >= 1, "bits", "≥ 1")
        self.classes = classes
        self.bits = bits
        var rng = SeededRNG(seed: seed &+ 0x9805_6A00)
        fc1 = Linear(inFeatures: classes, outFeatures: 4096, rng: &rng)
        fc2 = Linear(inFeatures: 4096, outFeatures: Self.featureWidth, rng: &rng)
        hashFC = Linear(inFeatures: Self.featureWidth, outFeatures: bits, rng: &rng)
        classFC = Linear(inFeatures: Self.featureWidth, outFeatures: classes, rng: &rng)
        var p = ModulePaths()
        p.add("feature.0", fc1); p.add("feature.2", fc2); p.add("hashing.0", hashFC); p.add("classifier.0", classFC)
        paths = p
        optimizer = try Adam(params: p.params, learningRate: learningRate, beta1: 0.5, beta2: 0.999)
    }

    public var params: [Param] { paths.params }

    /// The feature f (B×512) of label rows `y` (B×C); no caches kept for a backward.
    public func feature(_ y: Tensor) -> Tensor {
        fc2.forward(relu.forward(fc1.forward(y, mode: .eval), mode: .eval), mode: .eval)
    }

    /// sign(h) of label rows `y` (0 → +1): the prototype codes the generator is steered towards.
    public func codes(_ y: Tensor) -> Tensor {
        var h = hashFC.forward(feature(y), mode: .eval)
        for i in 0..<h.count { h.data[i] = h.data[i] >= 0 ? 1 : -1 }
        return h
    }

    /// (f, h, c) for label rows y; caches for `backward`.
    func forward(_ y: Tensor) -> (f: Tensor, h: Tensor, c: Tensor) {
        let f = fc2.forward(relu.forward(fc1.forward(y, mode: .train), mode: .train), mode: .train)
        var h = hashFC.forward(f, mode: .train), c = classFC.forward(f, mode: .train)
        for i in 0..<h.count { h.data[i] = tanhf(h.data[i]) }
        for i in 0..<c.count { c.data[i] = 1 / (1 + expf(-c.data[i])) }
        cache = (h, c)
        return (f, h, c)
    }

    /// Accumulates parameter gradients for ∂L/∂h and ∂L/∂c of the last `forward`.
    func backward(dh: Tensor, dc: Tensor) {
        guard let (h, c) = cache else { preconditionFailure("ProSGANPrototypeNet.backward before forward") }
        var gh = dh, gc = dc
        for i in 0..<gh.count { gh.data[i] *= 1 - h.data[i] * h.data[i] }
        for i in 0..<gc.count { gc.data[i] *= c.data[i] * (1 - c.data[i]) }
        var gf = hashFC.backward(gh, paramGrads: true)
        let g2 = classFC.backward(gc, paramGrads: true)
        for i in 0..<gf.count { gf.data[i] += g2.data[i] }
        _ = fc1.backward(relu.backward(fc2.backward(gf, paramGrads: true), paramGrads: true), paramGrads: true)
    }

    /// The loss of the type doc and its gradients ∂L/∂h, ∂L/∂c for prototype codes h (B×K), label
    /// reconstructions c (B×C) of label rows y, against training codes (N×K) and labels (N×C).
    static func loss(h: Tensor, c: Tensor, y: Tensor, trainCodes: Tensor, trainLabels: Tensor)
        -> (loss: Double, dh: Tensor, dc: Tensor) {
        let b = h.shape[0], n = trainCodes.shape[0], k = h.shape[1], C = y.shape[1]
        let theta = Tensor.matmul(h, trainCodes, transB: true, alpha: 0.5)      // B×N
        let overlap = Tensor.matmul(y, trainLabels, transB: true)               // B×N
        var dTheta = Tensor(zeros: [b, n])
        let scale = 1 / Double(n * b)
        var likelihood = 0.0
        for i in 0..<(b * n) {
            let t = Double(theta.data[i]), s: Double = overlap.data[i] > 0 ? 1 : 0
            likelihood += (max(t, 0) + log1p(exp(-abs(t))) - s * t)
            dTheta.data[i] = Float((1 / (1 + exp(-t)) - s) * scale)
        }
        var dh = Tensor.matmul(dTheta, trainCodes, alpha: 0.5)                  // B×K
        var quant = 0.0
        let qScale = 1 / (1e4 * Double(b))
        for i in 0..<(b * k) {
            let v = Double(h.data[i]), sg: Double = v > 0 ? 1 : (v < 0 ? -1 : 0)
            quant += (sg - v) * (sg - v)
            dh.data[i] += Float(-2 * (sg - v) * qScale)
        }
        var dc = Tensor(zeros: [b, C])
        var mse = 0.0
        let cScale = 1 / Double(b * C)
        for i in 0..<(b * C) {
            let d = Double(c.data[i]) - Double(y.data[i])
            mse += d * d
            dc.data[i] = Float(2 * d * cScale)
        }
        return (likelihood * scale + quant * qScale + mse * cScale, dh, dc)
    }

    /// One Adam step of the loss on label rows `y` (the optimiser's current learning rate).
    @discardableResult
    public func trainStep(y: Tensor, trainCodes: Tensor, trainLabels: Tensor) -> Double {
        for p in params { p.grad.zero() }
        let (_, h, c) = forward(y)
        let (l, dh, dc) = Self.loss(h: h, c: c, y: y, trainCodes: trainCodes, trainLabels: trainLabels)
        backward(dh: dh, dc: dc)
        optimizer.step()
        return l
    }

    public func stateDict(prefix: String = "") -> [(String, Tensor)] { paths.stateDict(prefix: prefix) }
    public func loadStateDict(_ d: [String: Tensor], prefix: String = "", argument: String = "state") throws {
        try paths.load(d, prefix: prefix, argument: argument)
    }
}
