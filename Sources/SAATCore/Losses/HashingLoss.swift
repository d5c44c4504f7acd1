/// A deep-hashing training objective on the continuous outputs u = F(x) ∈ (−1, 1)^K of a batch.
///
/// Every loss keeps a memory U ∈ R^{N×K} of the latest outputs of every training item and the
/// training labels Y ∈ {0,1}^{N×C} (the official SAAT/CgAT code does the same; pointwise losses
/// write U without reading it): `lossAndGradient` first writes u into U at the batch's
/// training-set indices, then computes the loss of the batch against the whole memory. U is a
/// constant for differentiation (as `U[idx] = u.data` in PyTorch): the gradient flows through u
/// only. `MemoryBankLoss` is that shared part; each loss subclasses it with its `value`.
public protocol HashingLoss: AnyObject {
    /// Registry name ("dpsh", "dph", "hashnet", "dsdh", "dch", "csq").
    var name: String { get }
    var bits: Int { get }
    /// Training labels Y (N×C, 0/1 floats).
    var trainLabels: Tensor { get }
    /// Memory U (N×K); starts at zero unless set (adversarial training seeds it with codes).
    var memory: Tensor { get set }

    /// Loss of the batch and ∂loss/∂u (B×K), with U and every other state held constant (it does
    /// not write u into U, so a finite-difference check can hold U fixed). Preconditions: the
    /// arguments passed `validateBatch`.
    func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor)

    /// Writes `u` (B×K) into the memory at `indices` (B training-set rows, in 0..<N), then returns
    /// `value`. `labels` (B×C) are the batch's labels.
    func lossAndGradient(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor)

    /// Throws `SAATError.invalidArgument` naming the argument when a batch does not fit this loss.
    func validateBatch(u: Tensor, labels: Tensor, indices: [Int]) throws

    /// Hook at the start of every epoch (0-based): DSDH's discrete B/W updates live here.
    func beginEpoch(_ epoch: Int)

    /// The scale β of the training outputs tanh(β·g) for the next training step, advancing any
    /// schedule: HashNet's continuation; 1 for every other loss. Evaluation always uses β = 1.
    func nextTrainingScale() -> Float

    /// Everything besides `memory` that a checkpoint must hold to resume bit-exactly
    /// (iteration counters, DSDH's B and W, …), as named tensors.
    func saveState() -> [String: Tensor]
    func loadState(_ state: [String: Tensor]) throws
}

/// The part every loss shares: its name, Y, the memory U and the default behaviour of the
/// protocol's hooks (no epoch work, β = 1, no state besides U). Subclasses override `value`
/// and, where they have them, the hooks.
public class MemoryBankLoss: HashingLoss {
    public let name: String
    public let bits: Int
    public let trainLabels: Tensor
    /// The memory's storage; `lossAndGradient` writes batch rows here directly.
    var bank: Tensor

    /// U (N×K), zero at start. Assigning it wholesale calls `memoryWasSet` (DSDH resets its codes).
    public var memory: Tensor {
        get { bank }
        set { bank = newValue; memoryWasSet() }
    }

    init(name: String, bits: Int, trainLabels: Tensor) {
        precondition(bits >= 1 && trainLabels.rank == 2, "\(name): build losses with makeHashingLoss")
        self.name = name
        self.bits = bits
        self.trainLabels = trainLabels
        self.bank = Tensor(zeros: [trainLabels.shape[0], bits])
    }

    /// Called after `memory` is assigned as a whole (not after the batch writes of training).
    func memoryWasSet() {}

    public func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        preconditionFailure("\(name): a MemoryBankLoss subclass implements value")
    }

    public func lossAndGradient(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        LossMath.writeRows(u, into: &bank, indices: indices)
        return value(u: u, labels: labels, indices: indices)
    }

    public func validateBatch(u: Tensor, labels: Tensor, indices: [Int]) throws {
        try validateHashingBatch(u: u, labels: labels, indices: indices, bits: bits, trainLabels: trainLabels)
    }

    public func beginEpoch(_ epoch: Int) {}
    public func nextTrainingScale() -> Float { 1 }
    public func saveState() -> [String: Tensor] { [:] }
    public func loadState(_ state: [String: Tensor]) throws { try requireStateKeys(state, [], loss: name) }
}

/// Whose official code a hashing loss takes the constants from where the codes differ
/// (`LossSpec.constants`). A training recipe names it (`TrainingSpec.lossConstants`).
public enum LossConstants: String, Sendable, CaseIterable {
    /// SAAT, github.com/xandery-geek/SAAT @3743e69 (model/hash_model/*.py): clean training, SAAT's
    /// and ATRDH's adversarial training (both load SAAT's hashing models), `saat.losses.hash_loss`.
    case saat
    /// CgAT, github.com/xunguangwang/CgAT @0d4a334 (model/hashing_loss.py): CgAT's adversarial
    /// training (`central_adv_train.py` builds its loss with `get_hashing_loss`).
    case cgat
}

/// A constant of a hashing loss whose value differs between the official codes, declared once:
/// its name (the key the loss reads from its `Settings`), its value in each code and a one-line
/// description citing where each value comes from. Not a user parameter (the recipe picks the
/// code); a loss's own constants that no two codes disagree on stay plain properties of it.
public struct LossConstant: Sendable {
    public let name: String
    public let values: [LossConstants: Value]
    public let doc: String

    public init(_ name: String, saat: Value, cgat: Value, _ doc: String) {
        self.name = name; self.values = [.saat: saat, .cgat: cgat]; self.doc = doc
    }
}

/// A loss's registry entry: its schema (parameters: only CSQ's `seed`), its constants that differ
/// between the official codes (`constants`), and how to build it for `bits`-bit codes and
/// training labels Y from `Settings` holding both (build it with `build`).
public struct LossSpec: Sendable {
    public let schema: Schema
    public let constants: [LossConstant]
    /// Reads the schema's parameters and the constants from the settings (`build` merges them).
    let make: @Sendable (_ bits: Int, _ trainLabels: Tensor, _ settings: Settings) throws -> HashingLoss

    public init(schema: Schema, constants: [LossConstant] = [],
                make: @escaping @Sendable (Int, Tensor, Settings) throws -> HashingLoss) {
        precondition(Set(constants.map(\.name)).count == constants.count
                     && Set(constants.map(\.name)).isDisjoint(with: schema.parameters.map(\.name)),
                     "\(schema.name): a constant named twice or like a parameter")
        precondition(constants.allSatisfy { c in LossConstants.allCases.allSatisfy { c.values[$0] != nil } })
        self.schema = schema; self.constants = constants; self.make = make
    }

    /// The loss for `bits`-bit codes and training labels Y, with the validated parameters
    /// `settings` (`schema.resolve`) and the constants of the official code `source`.
    public func build(bits: Int, trainLabels: Tensor, settings: Settings, constants source: LossConstants) throws -> HashingLoss {
        var values = settings.values
        for c in constants { values[c.name] = c.values[source]! }
        return try make(bits, trainLabels, Settings(schema: settings.schema, values: values))
    }

    /// The schema of a loss without parameters.
    static func schema(_ name: String, _ summary: String, parameters: [Parameter] = []) -> Schema {
        Schema(.loss, name, python: "hash_loss", summary: summary, parameters: parameters)
    }
}
