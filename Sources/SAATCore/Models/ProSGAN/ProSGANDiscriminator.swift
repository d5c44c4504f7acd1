import HashKernels

/// ProS-GAN's discriminator (official code xunguangwang/ProS-GAN, `model/module.py`
/// `Discriminator`, after StarGAN's PatchGAN): r stride-2 convolutions Conv2d(4×4, stride 2,
/// padding 1) with spectral normalisation, each followed by LeakyReLU(0.01), from 3 channels to
/// d, 2d, …, 2^{r−1}·d, then `fc` = Conv2d(2^{r−1}·d → C + 1, kernel S/2^r, no bias, no spectral
/// norm), whose 1×1 output is the C label scores and the real/fake score (LSGAN targets, see
/// `ProSGAN`). It sees images in [−1, 1] (the generator's output space).
///
/// Sizes: the official d = 64, r = 5 (kernel 7) at 224×224. In general r is the largest count
/// ≤ 5 with S divisible by 2^r and S/2^r ≥ 4 (r = 3, kernel 4 at 32×32), and d is halved (32) for
/// images smaller than 112×112, as the generator's widths.
///
/// Spectral norm: `SpectralNorm` (one power iteration per forward, PyTorch semantics). ProS-GAN
/// ships its own copy of it, which differs in three ways that do not matter here: it iterates in
/// eval mode too (this discriminator always runs in train mode, and only during training),
/// normalises by ‖z‖ + ε instead of max(‖z‖, ε) (ε = 1e-12), and calls the unnormalised weight
/// "weight_bar", the name `stateDict` uses.
///
/// State-dict names (the official ones): main.{0,2,…}.bias, .weight_bar, .weight_u, .weight_v,
/// and fc.weight.
public final class ProSGANDiscriminator {
    public let side: Int
    public let classes: Int
    public let width: Int
    public let repeats: Int
    let main: [Layer]
    let fc: Conv2d
    let paths: ModulePaths

    /// The number of stride-2 layers for images of side `side`.
    public static func repeats(side: Int) -> Int {
        var r = 5
        while r > 0 && (side % (1 << r) != 0 || side / (1 << r) < 4) { r -= 1 }
        return r
    }

    public init(side: Int, classes: Int, seed: UInt64) throws {
        try require(classes >= 1, "train_labels", "at least one label column")
        let r = Self.repeats(side: side)
        try require(r >= 1, "model", "a model of square images of side ≥ 8 divisible by 2 (the discriminator halves them), got side \(side)")
        self.side = side; self.classes = classes; repeats = r
        width = ProSGANGenerator.Widths.forImage(side: side) == .official ? 64 : 32
        var rng = SeededRNG(seed: seed &+ 0xD15C_0000)
        var p = ModulePaths()
        p.renames = ["weight_orig": "weight_bar"]
        var layers: [Layer] = []
        var c = 3, out = width
        for i in 0..<r {
            let conv = Conv2d(inChannels: c, outChannels: out, kernel: 4, stride: 2, padding: 1, rng: &rng)
            let sn = SpectralNorm(conv, seed: seed &+ 0x5EC7_0000 &+ UInt64(i))
            p.add("main.\(2 * i)", sn)
            layers += [sn, LeakyReLU(negativeSlope: 0.01)]
            c = out; out *= 2
        }
        main = layers
        fc = Conv2d(inChannels: c, outChannels: classes + 1, kernel: side >> r, bias: false, rng: &rng)
        p.add("fc", fc)
        paths = p
    }

    public var params: [Param] { paths.params }

    /// D(x) (B×(C+1)) for images in [−1, 1] (B×3×S×S); caches for `backward`.
    public func forward(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1...] == [3, side, side], "ProSGANDiscriminator: images \(x.shape)")
        let h = main.reduce(x) { $1.forward($0, mode: .train) }
        return fc.forward(h, mode: .train).reshaped([x.shape[0], classes + 1])
    }

    /// ∂L/∂x for ∂L/∂D(x) of the last `forward`; accumulates parameter gradients when `paramGrads`.
    public func backward(_ dOut: Tensor, paramGrads: Bool) -> Tensor {
        let g = fc.backward(dOut.reshaped([dOut.shape[0], classes + 1, 1, 1]), paramGrads: paramGrads)
        return main.reversed().reduce(g) { $1.backward($0, paramGrads: paramGrads) }
    }

    public func stateDict(prefix: String = "") -> [(String, Tensor)] { paths.stateDict(prefix: prefix) }
    public func loadStateDict(_ d: [String: Tensor], prefix: String = "", argument: String = "state") throws {
        try paths.load(d, prefix: prefix, argument: argument)
    }
}
