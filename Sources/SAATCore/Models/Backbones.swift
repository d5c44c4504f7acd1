/// Backbone architectures with a K-bit hash layer, named like PyTorch `nn.Sequential` modules so
/// a PyTorch `state_dict` of the equivalent model loads unchanged.
///
/// - `cnn-small` (3×32×32): conv 3→32 3×3 pad 1 + ReLU + maxpool 2 → conv 32→64 3×3 pad 1 + ReLU +
///   maxpool 2 → flatten (4096) → linear 4096→512 + ReLU → hash layer 512→K. Parameter names
///   `features.0.*`, `features.3.*`, `classifier.0.*`, `hash_layer.*`. No input normalisation by
///   default. Kaiming-normal init (it is trained from scratch; see `makeLayers`).
/// - `alexnet` (3×224×224): torchvision AlexNet's `features` (indices 0…12) and `classifier[:6]`
///   (Dropout, FC 9216→4096, ReLU, Dropout, FC 4096→4096, ReLU: `classifier.1.*`, `classifier.4.*`),
///   then `hash_layer` 4096→K, as SAAT/CgAT `model/backbone.py`. ImageNet mean/std inside.
/// - `vgg11` (3×224×224): torchvision VGG11 `features` (indices 0…20) and `classifier[:6]`
///   (FC 25088→4096, ReLU, Dropout, FC 4096→4096, ReLU, Dropout: `classifier.0.*`, `classifier.3.*`),
///   then `hash_layer`. ImageNet mean/std inside.
/// The adaptive average pool of torchvision is the identity at 224×224 input and is omitted
/// (inputs of another size are rejected).
public enum Backbone: String, CaseIterable, Sendable {
    case cnnSmall = "cnn-small"
    case alexnet = "alexnet"
    case vgg11 = "vgg11"

    public var inputShape: [Int] {
        switch self {
        case .cnnSmall: return [3, 32, 32]
        case .alexnet, .vgg11: return [3, 224, 224]
        }
    }

    /// Per-channel normalisation applied inside the model (attacks work in [0,1] pixel space).
    public var defaultMean: [Float] {
        self == .cnnSmall ? [0, 0, 0] : [0.485, 0.456, 0.406]
    }
    public var defaultStd: [Float] {
        self == .cnnSmall ? [1, 1, 1] : [0.229, 0.224, 0.225]
    }

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Its registry entry: the model's parameters besides the per-channel `mean` and `std` arrays.
    public var schema: Schema {
        let summary: String
        switch self {
        case .cnnSmall: summary = "3×32×32: two conv 3×3 + ReLU + max-pool blocks (32, 64 channels), FC 4096→512, hash layer."
        case .alexnet: summary = "3×224×224: torchvision AlexNet features and classifier[:6], then the hash layer (SAAT/CgAT)."
        case .vgg11: summary = "3×224×224: torchvision VGG11 features and classifier[:6], then the hash layer (SAAT/CgAT)."
        }
        return Schema(.backbone, rawValue, python: "HashingModel", summary: summary, parameters: [
            .int("bits", 32, 1...4096, "code length K of the hash layer"),
            .int("seed", 0, 0...Int.max, "seed of the weight initialisation and of the dropout masks"),
        ], inputShape: inputShape)
    }

    /// Builds the named layers (without the final tanh), drawing initial weights from `rng`
    /// in layer order. Dropout layers get seeds derived from `seed`.
    func makeLayers(bits: Int, rng: inout SeededRNG, seed: UInt64) -> [(String, Layer)] {
        var layers: [(String, Layer)] = []
        var dropoutCount: UInt64 = 0
        func dropout() -> Dropout {
            dropoutCount += 1
            return Dropout(p: 0.5, seed: seed &+ 0xD509_0000 &+ dropoutCount)
        }
        func features(_ cfg: [Int?], kernel: [Int] = [], stride: [Int] = [], padding: [Int] = [],
                      pool: (Int, Int) = (2, 2), inChannels: Int = 3) {
            // cfg: channel count for conv(+ReLU), nil for max-pool; indices follow nn.Sequential.
            var c = inChannels, idx = 0, convNo = 0
            for item in cfg {
                if let o = item {
                    let k = kernel.isEmpty ? 3 : kernel[convNo]
                    let s = stride.isEmpty ? 1 : stride[convNo]
                    let p = padding.isEmpty ? 1 : padding[convNo]
                    layers.append(("features.\(idx)", Conv2d(inChannels: c, outChannels: o, kernel: k,
                                                             stride: s, padding: p, rng: &rng)))
                    layers.append(("features.\(idx + 1)", ReLU()))
                    idx += 2; c = o; convNo += 1
                } else {
                    layers.append(("features.\(idx)", MaxPool2d(kernel: pool.0, stride: pool.1)))
                    idx += 1
                }
            }
        }
        let hashIn: Int
        switch self {
        case .cnnSmall:
            features([32, nil, 64, nil])
            layers.append(("flatten", Flatten()))
            layers.append(("classifier.0", Linear(inFeatures: 4096, outFeatures: 512, rng: &rng)))
            layers.append(("classifier.1", ReLU()))
            hashIn = 512
        case .alexnet:
            features([64, nil, 192, nil, 384, 256, 256, nil], kernel: [11, 5, 3, 3, 3],
                     stride: [4, 1, 1, 1, 1], padding: [2, 2, 1, 1, 1], pool: (3, 2))
            layers.append(("flatten", Flatten()))
            layers.append(("classifier.0", dropout()))
            layers.append(("classifier.1", Linear(inFeatures: 9216, outFeatures: 4096, rng: &rng)))
            layers.append(("classifier.2", ReLU()))
            layers.append(("classifier.3", dropout()))
            layers.append(("classifier.4", Linear(inFeatures: 4096, outFeatures: 4096, rng: &rng)))
            layers.append(("classifier.5", ReLU()))
            hashIn = 4096
        case .vgg11:
            features([64, nil, 128, nil, 256, 256, nil, 512, 512, nil, 512, 512, nil])
            layers.append(("flatten", Flatten()))
            layers.append(("classifier.0", Linear(inFeatures: 25088, outFeatures: 4096, rng: &rng)))
            layers.append(("classifier.1", ReLU()))
            layers.append(("classifier.2", dropout()))
            layers.append(("classifier.3", Linear(inFeatures: 4096, outFeatures: 4096, rng: &rng)))
            layers.append(("classifier.4", ReLU()))
            layers.append(("classifier.5", dropout()))
            hashIn = 4096
        }
        // cnn-small is trained from scratch (no ImageNet weights exist for it): its conv and linear
        // layers get Kaiming-normal weights N(0, 2/fan_in) and zero biases (He et al. 2015), which
        // keep activations at unit scale through the ReLUs. PyTorch's default uniform init shrinks
        // them ~2.4× per layer, leaving the hash outputs at ~4e-3 where the pairwise hashing losses
        // have almost no gradient. alexnet/vgg11 keep PyTorch's default init (they are meant to
        // load pretrained weights).
        if self == .cnnSmall {
            for (_, layer) in layers {
                for p in layer.params {
                    if p.name == "weight" {
                        let fanIn = p.value.shape.dropFirst().reduce(1, *)
                        let sd = (2 / Float(fanIn)).squareRoot()
                        for i in 0..<p.value.count { p.value.data[i] = sd * rng.normal() }
                    } else {
                        p.value.zero()
                    }
                }
            }
        }
        // Hash layer: N(0, 0.01) weights and zero bias, as CgAT model/backbone.py.
        let hash = Linear(inFeatures: hashIn, outFeatures: bits, rng: &rng)
        for p in hash.params {
            if p.name == "weight" {
                for i in 0..<p.value.count { p.value.data[i] = 0.01 * rng.normal() }
            } else {
                p.value.zero()
            }
        }
        layers.append(("hash_layer", hash))
        return layers
    }
}
