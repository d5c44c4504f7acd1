#if canImport(Glibc)
import Glibc
#endif
import HashKernels

/// ProS-GAN's generator (official code xunguangwang/ProS-GAN, `model/module.py` `Generator` and
/// `LabelEncoder`, after StarGAN's encoder–decoder), for square RGB images of side S (a multiple
/// of 16):
/// - input: the image x ∈ [0, 1] is mapped to x̃ = 2x − 1 (the official `set_input_images`);
/// - label encoder: the prototype feature f (B×512) → Linear(512, n·s·s) → ReLU → (B, n, s, s)
///   with s = S/16, then 4 × [ConvTranspose2d(4, stride 2, padding 1, no bias) halving the
///   channels → InstanceNorm2d → ReLU] up to S×S, then Conv2d(n/16 → 3, 3×3, padding 1, no bias);
/// - image encoder on cat(label map, x̃) (6 channels): Conv2d(6 → w, 7×7, padding 3) →
///   InstanceNorm2d → ReLU, 2 × [Conv2d(4×4, stride 2, padding 1) doubling the channels →
///   InstanceNorm2d → ReLU], 3 residual blocks (`ResidualBlock`) at 4w channels;
/// - decoder: 3 residual blocks, 2 × [ConvTranspose2d(4, stride 2, padding 1, no bias) halving the
///   channels → InstanceNorm2d → ReLU];
/// - output: tanh(Conv2d(w + 3 → 3, 3×3, padding 1, no bias)(cat(decoded, x̃))) ∈ (−1, 1); the
///   adversarial image is (output + 1)/2.
/// Instance norms have no affine parameters (the official `net_mode='t'` and its defaults).
///
/// Widths: the official w = 64 and n = 128 for 224×224 images (`Widths.official`); for images
/// smaller than 112×112 the generator uses half of both (w = 32, n = 64: `Widths.half`), which
/// keeps a 32×32 model's cost in proportion to its image; the architecture is otherwise the same.
///
/// Parameters carry the official `state_dict` names (label_encoder.fc.0.*,
/// label_encoder.transform.{0,3,6,9,12}.weight, image_encoder.{0,3,6}.*,
/// image_encoder.{9,10,11}.main.{0,3}.weight, decoder.{0,1,2}.main.{0,3}.weight,
/// decoder.{3,6}.weight, residual.0.weight).
public final class ProSGANGenerator {
    public struct Widths: Sendable, Equatable {
        /// Channels of the image encoder's first convolution (w).
        public let image: Int
        /// Channels of the label encoder's first map (n).
        public let label: Int
        public static let official = Widths(image: 64, label: 128)
        public static let half = Widths(image: 32, label: 64)
        /// The widths the generator uses for images of side `side`.
        public static func forImage(side: Int) -> Widths { side >= 112 ? .official : .half }
    }

    public let side: Int
    public let widths: Widths
    let labelFC: Linear, labelReLU = ReLU()
    let labelTransform: [Layer]
    let encoder: [Layer]
    let decoder: [Layer]
    let outConv: Conv2d
    let catLabel = ChannelConcat(), catOut = ChannelConcat()
    let paths: ModulePaths
    private var lastOut: Tensor?
    private var lastBatch = 0

    public init(side: Int, seed: UInt64, widths: Widths? = nil) throws {
        try require(side >= 16 && side % 16 == 0, "model", "a model of square images whose side is a multiple of 16 "
                    + "(ProS-GAN's label encoder starts at side/16 and doubles 4 times), got side \(side)")
        self.side = side
        let w = widths ?? .forImage(side: side)
        self.widths = w
        var rng = SeededRNG(seed: seed &+ 0x6E4E_0000)
        let s = side / 16, n = w.label
        labelFC = Linear(inFeatures: ProSGANPrototypeNet.featureWidth, outFeatures: n * s * s, rng: &rng)
        var p = ModulePaths()
        p.add("label_encoder.fc.0", labelFC)
        var t: [Layer] = []
        var c = n
        for i in 0..<4 {
            let up = ConvTranspose2d(inChannels: c, outChannels: c / 2, kernel: 4, stride: 2, padding: 1, bias: false, rng: &rng)
            p.add("label_encoder.transform.\(3 * i)", up)
            t += [up, InstanceNorm2d(channels: c / 2), ReLU()]
            c /= 2
        }
        let toRGB = Conv2d(inChannels: c, outChannels: 3, kernel: 3, padding: 1, bias: false, rng: &rng)
        p.add("label_encoder.transform.12", toRGB)
        labelTransform = t + [toRGB]

        var e: [Layer] = []
        let first = Conv2d(inChannels: 6, outChannels: w.image, kernel: 7, padding: 3, rng: &rng)
        p.add("image_encoder.0", first)
        e += [first, InstanceNorm2d(channels: w.image), ReLU()]
        c = w.image
        for i in 0..<2 {
            let down = Conv2d(inChannels: c, outChannels: 2 * c, kernel: 4, stride: 2, padding: 1, rng: &rng)
            p.add("image_encoder.\(3 + 3 * i)", down)
            e += [down, InstanceNorm2d(channels: 2 * c), ReLU()]
            c *= 2
        }
        for i in 0..<3 {
            let r = ResidualBlock(channels: c, rng: &rng)
            p.add("image_encoder.\(9 + i)", r)
            e.append(r)
        }
        encoder = e
        var d: [Layer] = []
        for i in 0..<3 {
            let r = ResidualBlock(channels: c, rng: &rng)
            p.add("decoder.\(i)", r)
            d.append(r)
        }
        for i in 0..<2 {
            let up = ConvTranspose2d(inChannels: c, outChannels: c / 2, kernel: 4, stride: 2, padding: 1, bias: false, rng: &rng)
            p.add("decoder.\(3 + 3 * i)", up)
            d += [up, InstanceNorm2d(channels: c / 2), ReLU()]
            c /= 2
        }
        decoder = d
        outConv = Conv2d(inChannels: c + 3, outChannels: 3, kernel: 3, padding: 1, bias: false, rng: &rng)
        p.add("residual.0", outConv)
        paths = p
    }

    public var params: [Param] { paths.params }

    /// G(x, f) ∈ (−1, 1)^{B×3×S×S} for images x (B×3×S×S in [0, 1]) and prototype features f
    /// (B×512); caches for `backward`.
    public func forward(images x: Tensor, feature f: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1...] == [3, side, side], "ProSGANGenerator: images \(x.shape)")
        precondition(f.shape == [x.shape[0], ProSGANPrototypeNet.featureWidth], "ProSGANGenerator: feature \(f.shape)")
        var xt = x
        for i in 0..<xt.count { xt.data[i] = 2 * xt.data[i] - 1 }
        let b = x.shape[0], s = side / 16
        let lf = labelReLU.forward(labelFC.forward(f, mode: .train), mode: .train).reshaped([b, widths.label, s, s])
        let labelMap = labelTransform.reduce(lf) { $1.forward($0, mode: .train) }
        let mixed = catLabel.forward(labelMap, xt)
        let enc = encoder.reduce(mixed) { $1.forward($0, mode: .train) }
        let dec = decoder.reduce(enc) { $1.forward($0, mode: .train) }
        var out = outConv.forward(catOut.forward(dec, xt), mode: .train)
        for i in 0..<out.count { out.data[i] = tanhf(out.data[i]) }
        lastOut = out
        lastBatch = b
        return out
    }

    /// Accumulates the parameter gradients of ∂L/∂G(x, f) for the last `forward` (the gradients of
    /// x and f are not needed: the images are data and the feature is detached, as officially).
    public func backward(_ dOut: Tensor) {
        guard let y = lastOut else { preconditionFailure("ProSGANGenerator.backward before forward") }
        precondition(dOut.shape == y.shape, "ProSGANGenerator.backward: \(dOut.shape) vs \(y.shape)")
        var g = dOut
        for i in 0..<g.count { g.data[i] *= 1 - y.data[i] * y.data[i] }
        let (dDec, _) = catOut.backward(outConv.backward(g, paramGrads: true))
        let dEnc = decoder.reversed().reduce(dDec) { $1.backward($0, paramGrads: true) }
        let (dLabelMap, _) = catLabel.backward(encoder.reversed().reduce(dEnc) { $1.backward($0, paramGrads: true) })
        let dlf = labelTransform.reversed().reduce(dLabelMap) { $1.backward($0, paramGrads: true) }
        _ = labelFC.backward(labelReLU.backward(dlf.reshaped([lastBatch, dlf.itemSize]), paramGrads: true), paramGrads: true)
    }

    public func stateDict(prefix: String = "") -> [(String, Tensor)] { paths.stateDict(prefix: prefix) }
    public func loadStateDict(_ d: [String: Tensor], prefix: String = "", argument: String = "state") throws {
        try paths.load(d, prefix: prefix, argument: argument)
    }
}
