import Glibc

// The factory for the six deep-hashing losses, the batch checks shared by all of them, and the
// batched linear-algebra helpers (through `BLAS.sgemm`) that their `value` functions are built of.

/// Names accepted by `makeHashingLoss`, in the order the papers' tables list them.
public let hashingLossNames: [String] = ["dpsh", "dph", "hashnet", "dsdh", "dch", "csq"]

/// A `HashingLoss` that also exposes its pure batch objective.
///
/// `value(u:labels:indices:)` computes the loss of the batch against the memory **as it is**
/// (it does not write u into U), so a finite-difference check can hold U fixed; the protocol's
/// `lossAndGradient` is "write u into the memory rows `indices`, then `value`".
public protocol HashingLossValue: HashingLoss {
    /// Loss of the batch and ∂loss/∂u (B×K), with U (memory) and every other state held constant.
    /// Preconditions: the arguments passed `validateBatch`.
    func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor)
    /// Throws `SAATError.invalidArgument` naming the argument when a batch does not fit this loss.
    func validateBatch(u: Tensor, labels: Tensor, indices: [Int]) throws
}

extension HashingLossValue {
    public func validateBatch(u: Tensor, labels: Tensor, indices: [Int]) throws {
        try validateHashingBatch(u: u, labels: labels, indices: indices, bits: bits,
                                 trainLabels: trainLabels)
    }
}

/// Builds the loss called `name` (one of `hashingLossNames`) for `bits`-bit codes and the
/// training labels Y (N×C, 0/1). `seed` drives everything random (CSQ's fallback centre and
/// extra centres); the others ignore it.
///
/// Throws `SAATError.invalidArgument` for an unknown name ("loss"), bits < 1 ("bits"), labels that
/// are not a 2-d 0/1 matrix with at least one row and one class ("trainLabels"), and for CSQ a
/// `bits` that is not a power of two (Sylvester–Hadamard centres need one).
public func makeHashingLoss(name: String, bits: Int, trainLabels: Tensor, seed: UInt64) throws -> HashingLoss {
    guard hashingLossNames.contains(name) else {
        throw SAATError.invalidArgument("loss", "one of \(hashingLossNames.joined(separator: ", ")), got '\(name)'")
    }
    try validateLossSetup(bits: bits, trainLabels: trainLabels)
    switch name {
    case "dpsh": return DPSHLoss(bits: bits, trainLabels: trainLabels, seed: seed)
    case "dph": return DPHLoss(bits: bits, trainLabels: trainLabels, seed: seed)
    case "hashnet": return HashNetLoss(bits: bits, trainLabels: trainLabels, seed: seed)
    case "dsdh": return DSDHLoss(bits: bits, trainLabels: trainLabels, seed: seed)
    case "dch": return DCHLoss(bits: bits, trainLabels: trainLabels, seed: seed)
    default:
        try require(bits & (bits - 1) == 0, "bits",
                    "a power of two number of bits for csq (Sylvester-Hadamard hash centres), got \(bits)")
        return CSQLoss(bits: bits, trainLabels: trainLabels, seed: seed)
    }
}

/// Checks shared by every loss constructor: bits ≥ 1, Y a non-empty 2-d 0/1 matrix.
public func validateLossSetup(bits: Int, trainLabels: Tensor) throws {
    try require(bits >= 1, "bits", "an int >= 1, got \(bits)")
    try require(trainLabels.rank == 2, "trainLabels", "a 2-d (N, C) label matrix, got shape \(trainLabels.shape)")
    try require(trainLabels.shape[0] >= 1 && trainLabels.shape[1] >= 1, "trainLabels",
                "at least one item and one class, got shape \(trainLabels.shape)")
    if let i = trainLabels.data.firstIndex(where: { $0 != 0 && $0 != 1 }) {
        throw SAATError.invalidArgument("trainLabels", "0/1 values, got \(trainLabels.data[i]) at flat index \(i)")
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

/// Numerics and batched products shared by the losses. Every B×N quantity is one `sgemm`.
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

    /// Pairwise label similarity s_ij = [y_iᵀ Y_j > 0] (share at least one label), B×N row-major,
    /// from y (B×C) and Y (N×C) through one sgemm.
    static func similarity(labels y: Tensor, trainLabels yTrain: Tensor) -> [Float] {
        let b = y.shape[0], c = y.shape[1], n = yTrain.shape[0]
        var s = [Float](repeating: 0, count: b * n)
        y.data.withUnsafeBufferPointer { yp in
            yTrain.data.withUnsafeBufferPointer { tp in
                s.withUnsafeMutableBufferPointer { sp in
                    BLAS.sgemm(transB: true, m: b, n: n, k: c, a: yp.baseAddress!, lda: c,
                               b: tp.baseAddress!, ldb: c, c: sp.baseAddress!, ldc: n)
                }
            }
        }
        // Label counts are small exact integers in float32: > 0.5 is "> 0".
        for i in 0..<s.count { s[i] = s[i] > 0.5 ? 1 : 0 }
        return s
    }

    /// θ = scale · u Uᵀ (B×N) for u (B×K) and memory U (N×K).
    static func innerProducts(u: Tensor, memory: Tensor, scale: Float) -> [Float] {
        let b = u.shape[0], k = u.shape[1], n = memory.shape[0]
        var t = [Float](repeating: 0, count: b * n)
        u.data.withUnsafeBufferPointer { up in
            memory.data.withUnsafeBufferPointer { mp in
                t.withUnsafeMutableBufferPointer { tp in
                    BLAS.sgemm(transB: true, m: b, n: n, k: k, alpha: scale, a: up.baseAddress!, lda: k,
                               b: mp.baseAddress!, ldb: k, c: tp.baseAddress!, ldc: n)
                }
            }
        }
        return t
    }

    /// out (B×K) ← scale · G U + out, for G (B×N) = ∂loss/∂θ and U (N×K): the chain rule through
    /// θ = scale·u Uᵀ with U constant.
    static func backProject(_ g: [Float], memory: Tensor, scale: Float, into out: inout Tensor) {
        let b = out.shape[0], k = out.shape[1], n = memory.shape[0]
        g.withUnsafeBufferPointer { gp in
            memory.data.withUnsafeBufferPointer { mp in
                out.data.withUnsafeMutableBufferPointer { op in
                    BLAS.sgemm(m: b, n: k, k: n, alpha: scale, a: gp.baseAddress!, lda: n,
                               b: mp.baseAddress!, ldb: k, beta: 1, c: op.baseAddress!, ldc: k)
                }
            }
        }
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

    /// The pairwise-likelihood term shared by DPSH and DSDH:
    /// Σ_ij [softplus(θ_ij) − s_ij θ_ij] over the B×N pairs, and G_ij = σ(θ_ij) − s_ij = ∂/∂θ_ij.
    static func pairLikelihood(theta: [Float], s: [Float]) -> (sum: Double, g: [Float]) {
        var sum = 0.0
        var g = [Float](repeating: 0, count: theta.count)
        for i in 0..<theta.count {
            let t = Double(theta[i]), si = Double(s[i])
            sum += softplus(t) - si * t
            g[i] = Float(sigmoid(t) - si)
        }
        return (sum, g)
    }
}
