/// DSDH — Deep Supervised Discrete Hashing (Li et al., NeurIPS 2017), as in the CgAT official code
/// (github.com/xunguangwang/CgAT @0d4a334, model/hashing_loss.py:136-192, `DSDHLoss`; SAAT has no DSDH).
///
/// Memory U (N×K), discrete codes B ∈ {−1,0,1}^{N×K} (stored row-major like U; CgAT stores both
/// transposed), classifier W (K×C), labels Y (N×C). With θ = ½·u Uᵀ and s_ij = [y_iᵀY_j > 0]:
///
///     L = 1/(B·N)·Σ_ij [softplus(θ_ij) − s_ij θ_ij]  +  μ/(B·C)·‖y − B_idx W‖²  +  ν/(K·C)·‖W‖²,   μ = ν = 1
///
/// where B_idx are the discrete codes of the batch's rows. Only the likelihood depends on u
/// (B and W are updated by the discrete steps, not by back-propagation), so
///
///     ∂L/∂u = ½ · G U,   G_ij = (σ(θ_ij) − s_ij)/(B·N)       (U constant)
///
/// `beginEpoch` runs 10 discrete cyclic coordinate (DCC) iterations, each:
///   W-step  W = (BᵀB + ν/μ·I)⁻¹ BᵀY            (K×K SPD system, Cholesky solve in Double)
///   B-step  P = Y Wᵀ + η/μ·U (η = 55), then for each bit i in order, with M = W Wᵀ:
///           B[:, i] = sign(P[:, i] − Σ_{k≠i} B[:, k] M[k, i])   (B updated in place, torch.sign(0) = 0)
/// W is the one of the last W-step, as in CgAT. Setting `memory` wholesale also sets B = sign(U)
/// (CgAT's `preinstall`); before the first `beginEpoch` W = 0. Both B and W are in `saveState()`.
/// Deviation: Y is fixed at construction (the official code fills it batch by batch).
public final class DSDHLoss: MemoryBankLoss {
    public static let spec = LossSpec(schema: LossSpec.schema(
        "dsdh", "DSDH (Li et al., NeurIPS 2017): pairwise likelihood plus a linear classifier on discrete codes, CgAT's constants.")
    ) { bits, labels, _ in DSDHLoss(bits: bits, trainLabels: labels) }

    public let mu = 1.0, nu = 1.0, eta = 55.0
    /// DCC iterations per epoch.
    public let dccIterations = 10
    /// Discrete codes B (N×K).
    public private(set) var codes: Tensor
    /// Classifier W (K×C).
    public private(set) var classifier: Tensor

    public init(bits: Int, trainLabels: Tensor) {
        codes = Tensor(zeros: [trainLabels.shape[0], bits])
        classifier = Tensor(zeros: [bits, trainLabels.shape[1]])
        super.init(name: "dsdh", bits: bits, trainLabels: trainLabels)
    }

    /// Assigning the memory wholesale resets the discrete codes to sign(U) (CgAT's `preinstall`).
    override func memoryWasSet() { codes = Tensor(shape: bank.shape, data: bank.data.map(LossMath.sign)) }

    public override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0], c = trainLabels.shape[1]
        precondition(u.shape == [b, k] && bank.shape == [n, k])
        var grad = Tensor(zeros: [b, k])
        let like = LossMath.pairLikelihood(u: u, labels: labels, trainLabels: trainLabels, memory: bank, into: &grad)
        // Classification term on the batch's discrete codes: ‖y − B_idx W‖² / (B·C).
        let pred = Tensor.matmul(codes.gather(indices), classifier)
        var cl = 0.0
        for i in 0..<(b * c) { let d = Double(labels.data[i]) - Double(pred.data[i]); cl += d * d }
        var reg = 0.0
        for w in classifier.data { reg += Double(w) * Double(w) }
        return (like + mu * cl / Double(b * c) + nu * reg / Double(k * c), grad)
    }

    /// The epoch's DCC iterations (see the type's doc); the epoch number is not used.
    public override func beginEpoch(_ epoch: Int) {
        let n = trainLabels.shape[0], k = bits
        var bcodes = codes
        var w = classifier
        for _ in 0..<dccIterations {
            w = DSDHLoss.solveW(codes: bcodes, labels: trainLabels, ridge: nu / mu)
            // P = Y Wᵀ + (η/μ) U  (N×K), M = W Wᵀ (K×K, symmetric).
            var p = bank
            Tensor.matmul(trainLabels, w, transB: true, beta: Float(eta / mu), into: &p)
            let m = Tensor.matmul(w, w, transB: true)
            for i in 0..<k {
                // r = B M[:, i] (M[:, i] = M[i, :]).
                let r = Tensor.matmul(bcodes, Tensor(shape: [k, 1], data: Array(m.data[(i * k)..<((i + 1) * k)])))
                let mii = m.data[i * k + i]
                for row in 0..<n {
                    let others = r.data[row] - bcodes.data[row * k + i] * mii
                    bcodes.data[row * k + i] = LossMath.sign(p.data[row * k + i] - others)
                }
            }
        }
        codes = bcodes
        classifier = w
    }

    /// W-step: the ridge-regression solution W = (BᵀB + ridge·I)⁻¹ BᵀY (K×C) for codes B (N×K) and
    /// labels Y (N×C); BᵀB and BᵀY by sgemm (exact: small integers), the K×K SPD solve by Cholesky
    /// in Double. `ridge` must be > 0.
    public static func solveW(codes: Tensor, labels: Tensor, ridge: Double) -> Tensor {
        let k = codes.shape[1], c = labels.shape[1]
        precondition(labels.shape[0] == codes.shape[0] && ridge > 0)
        let gram = Tensor.matmul(codes, codes, transA: true), rhs = Tensor.matmul(codes, labels, transA: true)
        var a = gram.data.map(Double.init)
        for i in 0..<k { a[i * k + i] += ridge }
        // BᵀB + ridge·I is SPD with eigenvalues ≥ ridge > 0, so the factorisation cannot fail.
        let x = choleskySolve(a, n: k, rhs: rhs.data.map(Double.init), nrhs: c)!
        return Tensor(shape: [k, c], data: x.map { Float($0) })
    }

    /// Solves A X = R for a symmetric positive-definite A (n×n, row-major) and R (n×nrhs) by the
    /// Cholesky factorisation A = L Lᵀ, then forward and back substitution. Returns nil when A is
    /// not (numerically) positive definite.
    public static func choleskySolve(_ a: [Double], n: Int, rhs: [Double], nrhs: Int) -> [Double]? {
        precondition(a.count == n * n && rhs.count == n * nrhs)
        var l = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            var d = a[j * n + j]
            for p in 0..<j { d -= l[j * n + p] * l[j * n + p] }
            guard d > 0, d.isFinite else { return nil }
            let ljj = d.squareRoot()
            l[j * n + j] = ljj
            for i in (j + 1)..<max(j + 1, n) {
                var v = a[i * n + j]
                for p in 0..<j { v -= l[i * n + p] * l[j * n + p] }
                l[i * n + j] = v / ljj
            }
        }
        var x = rhs
        for col in 0..<nrhs {
            // L z = r
            for i in 0..<n {
                var v = x[i * nrhs + col]
                for p in 0..<i { v -= l[i * n + p] * x[p * nrhs + col] }
                x[i * nrhs + col] = v / l[i * n + i]
            }
            // Lᵀ x = z
            for i in stride(from: n - 1, through: 0, by: -1) {
                var v = x[i * nrhs + col]
                for p in (i + 1)..<max(i + 1, n) { v -= l[p * n + i] * x[p * nrhs + col] }
                x[i * nrhs + col] = v / l[i * n + i]
            }
        }
        return x
    }

    /// "B": codes (N×K), "W": classifier (K×C).
    public override func saveState() -> [String: Tensor] { ["B": codes, "W": classifier] }

    public override func loadState(_ state: [String: Tensor]) throws {
        try requireStateKeys(state, ["B", "W"], loss: name)
        let b = state["B"]!, w = state["W"]!
        try require(b.shape == codes.shape && b.data.allSatisfy { $0 == -1 || $0 == 0 || $0 == 1 },
                    "state['B']", "codes of shape \(codes.shape) with values in {-1, 0, 1}, got shape \(b.shape)")
        try require(w.shape == classifier.shape && w.allFinite,
                    "state['W']", "finite values of shape \(classifier.shape), got shape \(w.shape)")
        codes = b
        classifier = w
    }
}
