/// A deep-hashing training objective on the continuous outputs u = F(x) ∈ (−1, 1)^K of a batch.
///
/// Pairwise losses keep a memory U ∈ R^{N×K} of the latest outputs of every training item and its
/// labels Y ∈ {0,1}^{N×C} (the official SAAT/CgAT code does the same): `lossAndGradient` first
/// writes u into U at the batch's training-set indices, then computes the loss of the batch
/// against the whole memory. U is a constant for differentiation (as `U[idx] = u.data` in PyTorch):
/// the gradient flows through u only.
public protocol HashingLoss: AnyObject {
    /// Registry name ("dpsh", "dph", "hashnet", "dsdh", "dch", "csq").
    var name: String { get }
    var bits: Int { get }
    /// Training labels Y (N×C, 0/1 floats).
    var trainLabels: Tensor { get }
    /// Memory U (N×K); starts at zero unless set (adversarial training seeds it with codes).
    var memory: Tensor { get set }

    /// Writes `u` (B×K) into the memory at `indices` (B training-set rows, in 0..<N), then returns
    /// the batch loss and ∂loss/∂u (B×K). `labels` (B×C) are the batch's labels.
    func lossAndGradient(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor)

    /// Hook at the start of every epoch (0-based): DSDH's discrete B/W updates live here.
    func beginEpoch(_ epoch: Int)

    /// Everything besides `memory` that a checkpoint must hold to resume bit-exactly
    /// (iteration counters, DSDH's B and W, …), as named tensors.
    func saveState() -> [String: Tensor]
    func loadState(_ state: [String: Tensor]) throws
}
