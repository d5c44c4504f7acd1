import Glibc

// The factory for the six deep-hashing losses (`Registry.losses`), the batch checks shared by all
// of them, and the numerics their `value` functions are built of.

/// Builds the loss called `name` for `bits`-bit codes and the training labels Y (N×C, 0/1) with its
/// validated settings (`Schema.resolve` of its schema) and the constants of the official code
/// `constants` (`LossSpec.constants`; SAAT's unless a recipe says otherwise).
///
/// Throws `SAATError.invalidArgument` for an unknown name ("loss"), bits < 1 ("bits"), labels that
/// are not a 2-d 0/1 matrix with at least one row and one class ("train_labels"), and for CSQ a
/// `bits` that is not a power of two (Sylvester–Hadamard centres need one).
public func makeHashingLoss(name: String, bits: Int, trainLabels: Tensor, settings: Settings,
                            constants: LossConstants = .saat) throws -> HashingLoss {
    let spec = try Registry.loss(name)
    try validateLossSetup(bits: bits, trainLabels: trainLabels)
    return try spec.build(bits: bits, trainLabels: trainLabels, settings: settings, constants: constants)
}

/// `makeHashingLoss` with default settings, and `seed` for a loss that declares one (CSQ's
/// random centres); the training loops pass their own seed this way.
public func makeHashingLoss(name: String, bits: Int, trainLabels: Tensor, seed: UInt64 = 0,
                            constants: LossConstants = .saat) throws -> HashingLoss {
    let schema = try Registry.loss(name).schema
    let given: [String: Value] = schema.parameter("seed") != nil ? ["seed": .int(Int(seed & UInt64(Int.max)))] : [:]
    return try makeHashingLoss(name: name, bits: bits, trainLabels: trainLabels, settings: try schema.resolve(given),
                               constants: constants)
}

/// One evaluation of a loss for `saat.losses.hash_loss` (errors name its arguments): builds the
/// loss of `spec` with SAAT's constants for the width of `u` and the training labels, sets its memory to `memory` (DSDH:
/// B = sign(U)), runs `beginEpoch(0)` (DSDH: the DCC updates), then `value` (U as given) or, with
/// `writeMemory`, `lossAndGradient` (u written into rows `indices` first). Returns the loss, ∂L/∂u
/// and the memory afterwards.
public func evaluateHashLoss(_ spec: LossSpec, u: Tensor, labels: Tensor, indices: [Int], trainLabels: Tensor,
                             memory: Tensor, settings: Settings, writeMemory: Bool) throws -> (loss: Double, grad: Tensor, memory: Tensor) {
    try require(u.rank == 2 && u.shape[0] >= 1 && u.shape[1] >= 1, "u", "a (B, K) array with B >= 1 and K >= 1, got \(u.shape)")
    let bits = u.shape[1]
    try validateLossSetup(bits: max(bits, 1), trainLabels: trainLabels)
    let loss: HashingLoss
    do {
        loss = try spec.build(bits: bits, trainLabels: trainLabels, settings: settings, constants: .saat)
    } catch let SAATError.invalidArgument("bits", expected) {
        throw SAATError.invalidArgument("u", "outputs whose width K is \(expected)")   // K is u's width
    }
    try validateMemory(memory, n: trainLabels.batch, bits: bits)
    try loss.validateBatch(u: u, labels: labels, indices: indices)
    loss.memory = memory
    loss.beginEpoch(0)
    let r = writeMemory ? loss.lossAndGradient(u: u, labels: labels, indices: indices)
                        : loss.value(u: u, labels: labels, indices: indices)
    return (r.loss, r.grad, loss.memory)
}

/// Checks shared by every loss constructor: bits ≥ 1, Y a non-empty 2-d 0/1 matrix.
public func validateLossSetup(bits: Int, trainLabels: Tensor) throws {
    try require(bits >= 1, "bits", "an int >= 1, got \(bits)")
    try require(trainLabels.rank == 2, "train_labels", "a 2-d (N, C) label matrix, got shape \(trainLabels.shape)")
    try require(trainLabels.shape[0] >= 1 && trainLabels.shape[1] >= 1, "train_labels",
                "at least one item and one class, got shape \(trainLabels.shape)")
    if let i = trainLabels.data.firstIndex(where: { $0 != 0 && $0 != 1 }) {
        throw SAATError.invalidArgument("train_labels", "0/1 values, got \(trainLabels.data[i]) at flat index \(i)")
    }
}

/// Batch checks: u (B, K) finite with K == bits, labels (B, C) 0/1 with C = Y's classes,
/// B indices in 0..<N.
public func validateHashingBatch(u: Tensor, labels: Tensor, indices: [Int], bits: Int, trainLabels: Tensor) throws {
    let n = trainLabels.shape[0], c = trainLabels.shape[1]
    try require(u.rank == 2 && u.shape[1] == bits, "u", "shape (B, \(bits)), got \(u.shape)")
    let b = u.shape[0]
    try require(b >= 1, "u", "a batch of at least one row, got shape \(u.shape)")
    if let i = u.data.firstIndex(where: { !$0.isFinite }) {
        throw SAATError.invalidArgument("u", "finite values, got \(u.data[i]) at flat index \(i)")
    }
    try require(labels.rank == 2 && labels.shape[0] == b && labels.shape[1] == c, "labels",
                "shape (\(b), \(c)), got \(labels.shape)")
    if let i = labels.data.firstIndex(where: { $0 != 0 && $0 != 1 }) {
        throw SAATError.invalidArgument("labels", "0/1 values, got \(labels.data[i]) at flat index \(i)")
    }
    try require(indices.count == b, "indices", "\(b) training-set indices (one per row of u), got \(indices.count)")
    if let i = indices.firstIndex(where: { $0 < 0 || $0 >= n }) {
        throw SAATError.invalidArgument("indices", "values in 0..<\(n), got \(indices[i]) at position \(i)")
    }
}

/// Checks a whole-memory assignment (N×K, finite).
public func validateMemory(_ m: Tensor, n: Int, bits: Int) throws {
    try require(m.shape == [n, bits], "memory", "shape (\(n), \(bits)), got \(m.shape)")
    if let i = m.data.firstIndex(where: { !$0.isFinite }) {
        throw SAATError.invalidArgument("memory", "finite values, got \(m.data[i]) at flat index \(i)")
    }
}

/// Throws unless `state` has exactly the keys `keys`.
func requireStateKeys(_ state: [String: Tensor], _ keys: [String], loss: String) throws {
    let got = state.keys.sorted(), want = keys.sorted()
    try require(got == want, "state", "the \(loss) state keys \(want), got \(got)")
}

/// Numerics and batched products shared by the losses (every B×N product is one `Tensor.matmul`).
enum LossMath {
    /// softplus(x) = log(1 + eˣ), computed as log1p(e^{−|x|}) + max(x, 0) (no overflow).
    @inline(__always)
    static func softplus(_ x: Double) -> Double { log1p(exp(-Swift.abs(x))) + Swift.max(x, 0) }

    /// σ(x) = 1/(1 + e^{−x}) without overflow for either sign.
    @inline(__always)
    static func sigmoid(_ x: Double) -> Double {
        if x >= 0 { return 1 / (1 + exp(-x)) }
        let e = exp(x)
        return e / (1 + e)
    }

    /// torch.sign: −1, 0 or +1.
    @inline(__always)
    static func sign(_ x: Float) -> Float { x > 0 ? 1 : (x < 0 ? -1 : 0) }

    /// θ = scale · u Uᵀ (B×N) for u (B×K) and memory U (N×K).
    static func innerProducts(u: Tensor, memory: Tensor, scale: Float) -> Tensor {
        Tensor.matmul(u, memory, transB: true, alpha: scale)
    }

    /// out (B×K) ← scale · G U + out, for G (B×N) = ∂loss/∂θ and U (N×K): the chain rule through
    /// θ = scale·u Uᵀ with U constant.
    static func backProject(_ g: Tensor, memory: Tensor, scale: Float, into out: inout Tensor) {
        Tensor.matmul(g, memory, alpha: scale, beta: 1, into: &out)
    }

    /// memory[indices[r], :] ← u[r, :] (later rows win for repeated indices, as in PyTorch).
    static func writeRows(_ u: Tensor, into memory: inout Tensor, indices: [Int]) {
        let k = u.shape[1], n = memory.shape[0]
        u.data.withUnsafeBufferPointer { up in
            memory.data.withUnsafeMutableBufferPointer { mp in
                for (r, i) in indices.enumerated() {
                    precondition(i >= 0 && i < n, "memory row \(i) out of range 0..<\(n)")
                    (mp.baseAddress! + i * k).update(from: up.baseAddress! + r * k, count: k)
                }
            }
        }
    }

    /// The pairwise likelihood shared by DPSH and DSDH, θ = ½·u Uᵀ against the memory: returns
    /// Σ_ij [softplus(θ_ij) − s_ij θ_ij] / (B·N) and adds its gradient ½·G U, with
    /// G_ij = (σ(θ_ij) − s_ij)/(B·N), to `grad` (B×K).
    static func pairLikelihood(u: Tensor, labels: Tensor, trainLabels: Tensor, memory: Tensor,
                               into grad: inout Tensor) -> Double {
        let s = LabelSet.similarity(labels, trainLabels)
        var g = innerProducts(u: u, memory: memory, scale: 0.5)
        let inv = 1.0 / Double(g.count)
        var sum = 0.0
        for i in 0..<g.count {
            let t = Double(g.data[i]), si = Double(s.data[i])
            sum += softplus(t) - si * t
            g.data[i] = Float(sigmoid(t) - si)
            g.data[i] *= Float(inv)
        }
        backProject(g, memory: memory, scale: 0.5, into: &grad)
        return sum * inv
    }
}
