/// What every attack shares: its registry entry (`AttackSpec`: schema + how to prepare it), the
/// prepared attack that runs on batches (`PreparedAttack`), the checks of its data inputs
/// (`AttackInputs`), and the declarations of the parameters several attacks have
/// (`AttackParameters`). One file per attack (PGD.swift, SAATAttack.swift, …) holds its
/// objective and its `spec`; `Registry.attacks` lists them.

/// An attack's registry entry: its schema, and how to prepare it from validated settings and data.
public struct AttackSpec: Sendable {
    public let schema: Schema
    /// Builds the attack for a model of `bits` bits from its inputs (by schema input name) and
    /// settings. Long preparations (THA's prototype net) poll `shouldStop`.
    public let prepare: @Sendable (_ bits: Int, _ inputs: AttackInputs, _ settings: Settings,
                                   _ shouldStop: () -> Bool) throws -> PreparedAttack

    public init(schema: Schema,
                prepare: @escaping @Sendable (Int, AttackInputs, Settings, () -> Bool) throws -> PreparedAttack) {
        self.schema = schema; self.prepare = prepare
    }
}

extension AttackSpec {
    /// An attack guided by the semantic codes of each call's labels (SAAT's mainstay codes, CgAT's
    /// center codes) computed from the training set: its schema (inputs `train_codes` and
    /// `train_labels`, then `parameters`, which include `targeted`) and its preparation.
    /// `alphaSchedule` fixes the α schedule (nil: the `alpha_schedule` parameter decides);
    /// `objective(codes, targeted)` is the loss each call minimises.
    static func guided(_ name: String, python: String, summary: String, kind: SemanticCodes.Kind,
                       parameters: [Parameter], alphaSchedule: Bool?,
                       objective: @escaping @Sendable (Tensor, Bool) -> AttackObjective) -> AttackSpec {
        let schema = Schema(.attack, name, python: python, summary: summary,
                            inputs: [AttackParameters.trainCodes, AttackParameters.trainLabels], parameters: parameters)
        return AttackSpec(schema: schema) { bits, inputs, s, _ in
            let (tc, tl) = try inputs.trainingSet(bits: bits)
            let targeted = s.bool("targeted")
            return PreparedAttack(schema: schema, settings: s, bits: bits, targeted: targeted, labelClasses: tl.shape[1],
                                  guides: true, config: AttackParameters.signConfig(s, alphaSchedule: alphaSchedule)) { _, _, _, labels, _, _ in
                let codes = try SemanticCodes.compute(kind, labels: labels!, trainCodes: tc, trainLabels: tl)
                return (objective(codes, targeted), codes)
            }
        }
    }
}

/// The objective of one call on `n` images with `labels` (nil when the attack takes none), and the
/// guide codes it steers by (n×K, {−1, 0, +1}; nil for an attack without one). `firstIndex` is the
/// index of image 0 in the caller's whole set: a per-image random choice draws from the stream
/// `SeededRNG(seed:stream: firstIndex + i)`, never from one stream in batch order.
public typealias ObjectiveBuilder = (_ model: HashingModel, _ images: UnsafePointer<Float>, _ n: Int,
                                     _ labels: Tensor?, _ firstIndex: Int,
                                     _ shouldStop: () -> Bool) throws -> (AttackObjective, Tensor?)

/// An attack ready to run: parameters validated and data checked once, at preparation. Several
/// threads may call `run` at once (it keeps no per-call state).
public final class PreparedAttack: @unchecked Sendable {
    public let schema: Schema
    public let settings: Settings
    /// Code length of the model it was prepared for.
    public let bits: Int
    /// Steers towards target labels (true) or away from the images' true labels.
    public let targeted: Bool
    /// Label columns `run` takes (one row per image), nil when it takes no labels.
    public let labelClasses: Int?
    /// Whether `run` produces guide codes.
    public let guides: Bool
    let config: AttackConfig
    let objective: ObjectiveBuilder

    public init(schema: Schema, settings: Settings, bits: Int, targeted: Bool, labelClasses: Int?, guides: Bool,
                config: AttackConfig, objective: @escaping ObjectiveBuilder) {
        self.schema = schema; self.settings = settings; self.bits = bits; self.targeted = targeted
        self.labelClasses = labelClasses; self.guides = guides; self.config = config; self.objective = objective
    }

    /// Attacks `n` images (n×C×H×W in [0, 1]) of `model` into `out`; writes the guide codes into
    /// `guide` (n×K int8) when the attack has them and `guide` is given. `labels`: one row per
    /// image (true labels, or target labels when `targeted`), required iff `labelClasses` is set.
    /// `firstIndex`: index of image 0 in the caller's whole set of queries; every random choice of
    /// image i (random start, DHTA/P2P's anchor items) comes from the stream (seed, firstIndex + i),
    /// so attacking a set in one call, in pieces or in shards on several processes gives bitwise
    /// the same images when each piece passes its offset.
    public func run(model: HashingModel, images: UnsafePointer<Float>, n: Int, labels: Tensor?,
                    out: UnsafeMutablePointer<Float>, guide: UnsafeMutablePointer<Int8>? = nil, firstIndex: Int = 0,
                    shouldStop: () -> Bool = { false }) throws {
        try require(firstIndex >= 0 && firstIndex <= Int(Int32.max), "first_index", "an int in 0...\(Int32.max), got \(firstIndex)")
        try require(model.bits == bits, "model", "a \(bits)-bit model (the attack was prepared for \(bits) bits), got \(model.bits) bits")
        if let c = labelClasses {
            guard let labels else {
                throw SAATError.invalidArgument("labels", "the \(targeted ? "target" : "true") labels of the images")
            }
            try require(labels.rank == 2, "labels", "a 2-d (N, C) label matrix, got shape \(labels.shape)")
            try require(labels.batch == n, "labels", "\(n) rows (one per image), got \(labels.batch)")
            try require(labels.shape[1] == c, "labels", "\(c) columns (the classes of the attack's data), got \(labels.shape[1])")
            try LabelSet.requireBinary(labels, "labels")
        }
        if n == 0 { return }
        try model.requireFiniteWeights()
        let (obj, codes) = try objective(model, images, n, labelClasses == nil ? nil : labels, firstIndex, shouldStop)
        try AttackEngine.run(model: model, images: images, n: n, objective: obj, config: config, out: out,
                             firstIndex: firstIndex, shouldStop: shouldStop)
        if let guide, let codes {
            for i in 0..<(n * bits) { guide[i] = Int8(codes.data[i]) }
        }
    }
}

/// The data arrays an attack is prepared with, by schema input name, checked on first use with
/// errors naming the input.
public struct AttackInputs: Sendable {
    public let arrays: [String: Tensor]
    public init(_ arrays: [String: Tensor]) { self.arrays = arrays }

    private func array(_ name: String) throws -> Tensor {
        guard let t = arrays[name] else { throw SAATError.invalidArgument(name, "an array (missing)") }
        return t
    }

    /// ±1 codes (N, bits) with N ≥ 1.
    public func codes(_ name: String, bits: Int) throws -> Tensor {
        let t = try array(name)
        try require(t.rank == 2 && t.shape[1] == bits, name, "\(bits)-bit codes: \(bits) columns (the model's bits), got shape \(t.shape)")
        try require(t.batch >= 1, name, "at least one code")
        try LabelSet.requireSigns(t, name)
        return t
    }

    /// The training set of the guided attacks: `train_codes` (N, bits) and `train_labels` (N, C).
    public func trainingSet(bits: Int) throws -> (codes: Tensor, labels: Tensor) {
        let codes = try codes("train_codes", bits: bits)
        return (codes, try labels("train_labels", rows: codes.batch))
    }

    /// The database of the targeted attacks: `db_codes` (N, bits) and `db_labels` (N, C).
    public func database(bits: Int) throws -> (codes: Tensor, labels: Tensor) {
        let codes = try codes("db_codes", bits: bits)
        return (codes, try labels("db_labels", rows: codes.batch))
    }

    /// Multi-hot 0/1 labels with one row per code of `rows`.
    public func labels(_ name: String, rows: Int) throws -> Tensor {
        let t = try array(name)
        try require(t.rank == 2 && t.batch == rows && t.shape[1] >= 1, name,
                    "one label row per code: \(rows) rows of C >= 1 classes, got shape \(t.shape)")
        try LabelSet.requireBinary(t, name)
        return t
    }

}

/// Parameters several attacks have, declared once (each attack picks its defaults).
public enum AttackParameters {
    public static func eps(_ v: Double) -> Parameter {
        .float("eps", v, min: 0, max: 1, "maximum perturbation ‖x' − x‖∞ in [0, 1] pixel units")
    }
    public static func step(_ v: Double) -> Parameter {
        .float("step", v, min: 0, max: 1, lowerOpen: true, "size of each signed-gradient step")
    }
    public static func steps(_ v: Int) -> Parameter {
        .int("steps", v, 1...Int(Int32.max), "number of iterations")
    }
    public static func randomStart(_ v: Bool) -> Parameter {
        .bool("random_start", v, "start from a uniform random point of the ε-ball")
    }
    public static func alphaSchedule(_ v: Bool) -> Parameter {
        .bool("alpha_schedule", v, "α schedule of tanh(α·g): 0.1 for the first half, then 0.2, 0.3, 0.5, 0.7, 1 (False: α = 1)")
    }
    public static let targeted = Parameter.bool("targeted", false, "attack towards target labels instead of away from the true ones")
    public static let seed = Parameter.int("seed", 0, 0...Int.max, "seed of every random choice")
    /// The label → code prototype networks of THA and ProS-GAN (both papers: 100 epochs × 300
    /// Adam steps of 64 label rows).
    public static let prototypeSteps = Parameter.int("prototype_steps", 30000, 1...Int(Int32.max),
                                                     "Adam steps of the prototype net (the paper: 100 epochs × 300 steps)")
    public static let prototypeBatch = Parameter.int("prototype_batch", 64, 1...4096,
                                                     "label rows per prototype-net step (each is a 4096-wide activation; the paper uses 64)")
    public static let trainCodes = Schema.Input("train_codes", "(N, K) ±1 codes of the training set, e.g. model.encode(train_images)")
    public static let trainLabels = Schema.Input("train_labels", "(N, C) 0/1 multi-hot labels of the training set")
    public static let dbCodes = Schema.Input("db_codes", "(N, K) ±1 codes of the database")
    public static let dbLabels = Schema.Input("db_labels", "(N, C) 0/1 multi-hot labels of the database")

    /// The sign-step configuration most attacks use.
    static func signConfig(_ s: Settings, randomStart: Bool? = nil, alphaSchedule: Bool? = nil) -> AttackConfig {
        AttackConfig(eps: s.float("eps"), steps: s.int("steps"), update: .sign(step: s.float("step")),
                     randomStart: randomStart ?? s.bool("random_start"),
                     alphaSchedule: alphaSchedule ?? s.bool("alpha_schedule"),
                     seed: s.has("seed") ? UInt64(s.int("seed")) : 0)
    }
}
