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

/// A loss's registry entry: its schema (parameters: only CSQ's `seed`; the papers' constants are
/// documented on each loss) and how to build it for `bits`-bit codes and training labels Y.
public struct LossSpec: Sendable {
    public let schema: Schema
    public let make: @Sendable (_ bits: Int, _ trainLabels: Tensor, _ settings: Settings) throws -> HashingLoss

    public init(schema: Schema, make: @escaping @Sendable (Int, Tensor, Settings) throws -> HashingLoss) {
        self.schema = schema; self.make = make
    }

    /// The schema of a loss without parameters.
    static func schema(_ name: String, _ summary: String, parameters: [Parameter] = []) -> Schema {
        Schema(.loss, name, python: "hash_loss", summary: summary, parameters: parameters)
    }
}
