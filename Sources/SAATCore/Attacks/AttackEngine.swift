#if canImport(Glibc)
import Glibc
#endif

/// The loss an attack minimises, as a function of the model outputs F(x') of a chunk of images.
public protocol AttackObjective: AnyObject {
    /// Loss and ∂loss/∂F for outputs `f` (n×K) of the images `rows` of the attacked batch at
    /// iteration `t` (0-based). The engine adds the optional pixel-space MSE term itself.
    func evaluate(f: Tensor, rows: Range<Int>, iteration t: Int) -> (loss: Double, grad: Tensor)
}

/// The batch size by which objectives that average over images divide (SAAT's attack batch), in
/// place of the number of images attacked together: each image's update is then the same whether
/// it is attacked alone, in a chunk or in a shard of another process.
public let nominalAttackBatch: Float = 128

/// How the perturbed image is updated from the gradient g = ∂loss/∂x'.
public enum ImageUpdate: Sendable, Equatable {
    /// PGD: x' ← x' − step·sign(g).
    case sign(step: Float)
    /// SGD with momentum on the image (HAG): v ← μv + g; x' ← x' − lr·v.
    case sgd(lr: Float, momentum: Float)
    /// Adam on the image (SDHA), PyTorch semantics.
    case adam(lr: Float, beta1: Float, beta2: Float)
}

/// The tanh scale schedule of SAAT's evaluation attacks (SAAT `model/util.py`): over T iterations
/// in ten equal segments α = 0.1 ×5, then 0.2, 0.3, 0.5, 0.7, 1.0. Segment of iteration i is
/// ⌊10·i/T⌋ (equal to the official ⌊i/(T/10)⌋ when 10 divides T, and defined for T < 10).
public enum AlphaSchedule {
    public static let levels: [Float] = [0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    public static func alpha(iteration i: Int, of total: Int) -> Float {
        levels[min(9, (10 * i) / max(total, 1))]
    }
}

/// Hyper-parameters shared by every iterative ℓ∞ attack.
public struct AttackConfig: Sendable {
    public var eps: Float
    public var steps: Int
    public var update: ImageUpdate
    public var randomStart: Bool
    public var alphaSchedule: Bool
    /// Weight of mean((x' − x)²) added to the loss (SDHA's perceptibility term), the mean taken over
    /// `nominalAttackBatch` images' pixels; 0 = none.
    public var mseWeight: Float
    public var seed: UInt64

    public init(eps: Float, steps: Int, update: ImageUpdate, randomStart: Bool, alphaSchedule: Bool,
                mseWeight: Float = 0, seed: UInt64 = 0) {
        self.eps = eps; self.steps = steps; self.update = update; self.randomStart = randomStart
        self.alphaSchedule = alphaSchedule; self.mseWeight = mseWeight; self.seed = seed
    }
}

/// Projected iterative attack loop shared by every attack (PGD, SAAT, CgAT's center attack,
/// HAG, SDHA, DHTA, P2P, THA): for each chunk of images, optional uniform random start in the
/// ε-ball, then `steps` iterations of forward (with the α schedule), objective, backward to the
/// input (no parameter gradients), update, and projection onto {‖x' − x‖∞ ≤ ε} ∩ [0,1]^d.
/// The model's current mode is used (eval for evaluation attacks; the adversarial-training loops
/// put it in train mode as the official code does).
public enum AttackEngine {
    /// Attacks `n` images at `images` (n×C×H×W, in [0,1]) and writes the adversarial images to
    /// `out`. Chunks of `chunk` images are attacked independently. `firstIndex` is the index of
    /// image 0 in the caller's whole set: the random start of image i is drawn from the stream
    /// `SeededRNG(seed: config.seed, stream: firstIndex + i)`. An image's result is therefore bitwise
    /// the same whether it is attacked alone, in any chunk, or in a shard on another process (the
    /// model's outputs and input gradients of an image do not depend on the other images of a
    /// batch, and objectives scale per image). `shouldStop` is polled between iterations.
    public static func run(model: HashingModel, images: UnsafePointer<Float>, n: Int,
                           objective: AttackObjective, config: AttackConfig,
                           out: UnsafeMutablePointer<Float>, chunk: Int? = nil, firstIndex: Int = 0,
                           shouldStop: () -> Bool = { false }) throws {
        let item = model.inputShape.reduce(1, *)
        let chunkSize = chunk ?? model.imagesPerChunk(gradients: true)
        var start = 0
        while start < n {
            let m = min(chunkSize, n - start)
            let x0 = UnsafeBufferPointer(start: images + start * item, count: m * item)
            var x = Tensor(shape: [m] + model.inputShape, copying: images + start * item)
            let count = m * item
            let eps = config.eps
            if config.randomStart {
                x.data.withUnsafeMutableBufferPointer { xp in
                    for img in 0..<m {
                        var rng = SeededRNG(seed: config.seed, stream: UInt64(firstIndex + start + img))
                        for i in (img * item)..<((img + 1) * item) {
                            let v = x0[i] + rng.uniform(-eps, eps)
                            xp[i] = min(max(v, 0), 1)
                        }
                    }
                }
            }
            // Optimiser state of the image update (velocity for SGD, two moments for Adam), as raw
            // buffers: the parallel update below writes them from several threads.
            let slots: Int
            switch config.update {
            case .sign: slots = 0
            case .sgd: slots = 1
            case .adam: slots = 2
            }
            let state = UnsafeMutablePointer<Float>.allocate(capacity: max(1, slots * count))
            state.initialize(repeating: 0, count: slots * count)
            defer { state.deallocate() }
            let v = state, a = state, b = state + count
            for t in 0..<config.steps {
                if shouldStop() { throw SAATError.interrupted }
                let alpha = config.alphaSchedule ? AlphaSchedule.alpha(iteration: t, of: config.steps) : 1
                let f = model.forward(x, alpha: alpha)
                let (_, gf) = objective.evaluate(f: f, rows: start..<(start + m), iteration: t)
                var g = model.backward(gf, paramGrads: false)
                let w = config.mseWeight
                g.data.withUnsafeMutableBufferPointer { gpb in
                    x.data.withUnsafeMutableBufferPointer { xpb in
                        let gp = gpb.baseAddress!, xp = xpb.baseAddress!
                        // Elementwise, so split over the kernels' threads (each value by one
                        // thread: results do not depend on the thread count).
                        Elementwise.parallel(count: count) { r in
                            if w > 0 {
                                let s = 2 * w / (nominalAttackBatch * Float(item))
                                for i in r { gp[i] += s * (xp[i] - x0[i]) }
                            }
                            switch config.update {
                            case let .sign(step):
                                for i in r {
                                    let gi = gp[i]
                                    xp[i] -= gi > 0 ? step : (gi < 0 ? -step : 0)
                                }
                            case let .sgd(lr, mu):
                                for i in r { v[i] = mu * v[i] + gp[i]; xp[i] -= lr * v[i] }
                            case let .adam(lr, b1, b2):
                                let c1 = 1 - powf(b1, Float(t + 1)), c2 = 1 - powf(b2, Float(t + 1))
                                for i in r {
                                    a[i] = b1 * a[i] + (1 - b1) * gp[i]
                                    b[i] = b2 * b[i] + (1 - b2) * gp[i] * gp[i]
                                    xp[i] -= lr * (a[i] / c1) / ((b[i] / c2).squareRoot() + 1e-8)
                                }
                            }
                            // Projection onto the ε-ball around x and the pixel range.
                            for i in r {
                                let lo = max(x0[i] - eps, 0), hi = min(x0[i] + eps, 1)
                                xp[i] = min(max(xp[i], lo), hi)
                            }
                        }
                    }
                }
            }
            x.data.withUnsafeBufferPointer { (out + start * item).update(from: $0.baseAddress!, count: count) }
            start += m
        }
    }
}
