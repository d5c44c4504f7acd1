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
public final class DSDHLoss: HashingLossValue {
    public let name = "dsdh"
    public let bits: Int
    public let trainLabels: Tensor
    public let mu = 1.0, nu = 1.0, eta = 55.0
    /// DCC iterations per epoch.
    public let dccIterations = 10
    /// Discrete codes B (N×K).
    public private(set) var codes: Tensor
    /// Classifier W (K×C).
    public private(set) var classifier: Tensor
    private var storage: Tensor

    /// U (N×K), zero at start. Assigning it also resets the discrete codes to sign(U).
    public var memory: Tensor {
        get { storage }
        set {
            storage = newValue
            codes = Tensor(shape: newValue.shape, data: newValue.data.map(LossMath.sign))
        }
    }

    /// `seed` is unused (DSDH's updates are deterministic).
    public init(bits: Int, trainLabels: Tensor, seed: UInt64) {
        precondition(bits >= 1 && trainLabels.rank == 2, "DSDHLoss: validate with makeHashingLoss")
        self.bits = bits
        self.trainLabels = trainLabels
        storage = Tensor(zeros: [trainLabels.shape[0], bits])
        codes = Tensor(zeros: [trainLabels.shape[0], bits])
        classifier = Tensor(zeros: [bits, trainLabels.shape[1]])
    }

    public func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        let b = u.shape[0], k = bits, n = trainLabels.shape[0], c = trainLabels.shape[1]
        precondition(u.shape == [b, k] && storage.shape == [n, k])
        let s = LossMath.similarity(labels: labels, trainLabels: trainLabels)
        let theta = LossMath.innerProducts(u: u, memory: storage, scale: 0.5)
        let inv = 1.0 / Double(b * n)
        var (like, g) = LossMath.pairLikelihood(theta: theta, s: s)
        for i in 0..<g.count { g[i] *= Float(inv) }
        // Classification term on the batch's discrete codes: ‖y − B_idx W‖² / (B·C).
        let bIdx = codes.gather(indices)
        var pred = [Float](repeating: 0, count: b * c)
        bIdx.data.withUnsafeBufferPointer { bp in
            classifier.data.withUnsafeBufferPointer { wp in
                pred.withUnsafeMutableBufferPointer { pp in
                    BLAS.sgemm(m: b, n: c, k: k, a: bp.baseAddress!, lda: k, b: wp.baseAddress!, ldb: c,
                               c: pp.baseAddress!, ldc: c)
                }
            }
        }
        var cl = 0.0
        for i in 0..<(b * c) { let d = Double(labels.data[i]) - Double(pred[i]); cl += d * d }
        var reg = 0.0
        for w in classifier.data { reg += Double(w) * Double(w) }
        var grad = Tensor(zeros: [b, k])
        LossMath.backProject(g, memory: storage, scale: 0.5, into: &grad)
        return (like * inv + mu * cl / Double(b * c) + nu * reg / Double(k * c), grad)
    }

    public func lossAndGradient(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        LossMath.writeRows(u, into: &storage, indices: indices)
        return value(u: u, labels: labels, indices: indices)
    }

    /// The epoch's DCC iterations (see the type's doc); the epoch number is not used.
    public func beginEpoch(_ epoch: Int) {
        let n = trainLabels.shape[0], k = bits, c = trainLabels.shape[1]
        var bcodes = codes
        var w = classifier
        for _ in 0..<dccIterations {
            w = DSDHLoss.solveW(codes: bcodes, labels: trainLabels, ridge: nu / mu)
            // P = Y Wᵀ + (η/μ) U  (N×K), M = W Wᵀ (K×K, symmetric).
            var p = storage.data
            var m = [Float](repeating: 0, count: k * k)
            trainLabels.data.withUnsafeBufferPointer { yp in
                w.data.withUnsafeBufferPointer { wp in
                    p.withUnsafeMutableBufferPointer { pp in
                        BLAS.sgemm(transB: true, m: n, n: k, k: c, a: yp.baseAddress!, lda: c,
                                   b: wp.baseAddress!, ldb: c, beta: Float(eta / mu), c: pp.baseAddress!, ldc: k)
                    }
                    m.withUnsafeMutableBufferPointer { mp in
                        BLAS.sgemm(transB: true, m: k, n: k, k: c, a: wp.baseAddress!, lda: c,
                                   b: wp.baseAddress!, ldb: c, c: mp.baseAddress!, ldc: k)
                    }
                }
            }
            var r = [Float](repeating: 0, count: n)
            for i in 0..<k {
                // r = B M[:, i] (one sgemm with a K×1 right-hand side; M[:, i] = M[i, :]).
                bcodes.data.withUnsafeBufferPointer { bp in
                    m.withUnsafeBufferPointer { mp in
                        r.withUnsafeMutableBufferPointer { rp in
                            BLAS.sgemm(m: n, n: 1, k: k, a: bp.baseAddress!, lda: k,
                                       b: mp.baseAddress! + i * k, ldb: 1, c: rp.baseAddress!, ldc: 1)
                        }
                    }
                }
                let mii = m[i * k + i]
                for row in 0..<n {
                    let others = r[row] - bcodes.data[row * k + i] * mii
                    bcodes.data[row * k + i] = LossMath.sign(p[row * k + i] - others)
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
        let n = codes.shape[0], k = codes.shape[1], c = labels.shape[1]
        precondition(labels.shape[0] == n && ridge > 0)
        var gram = [Float](repeating: 0, count: k * k)
        var rhs = [Float](repeating: 0, count: k * c)
        codes.data.withUnsafeBufferPointer { bp in
            gram.withUnsafeMutableBufferPointer { gp in
                BLAS.sgemm(transA: true, m: k, n: k, k: n, a: bp.baseAddress!, lda: k,
                           b: bp.baseAddress!, ldb: k, c: gp.baseAddress!, ldc: k)
            }
            labels.data.withUnsafeBufferPointer { yp in
                rhs.withUnsafeMutableBufferPointer { rp in
                    BLAS.sgemm(transA: true, m: k, n: c, k: n, a: bp.baseAddress!, lda: k,
                               b: yp.baseAddress!, ldb: c, c: rp.baseAddress!, ldc: c)
                }
            }
        }
        var a = gram.map(Double.init)
        for i in 0..<k { a[i * k + i] += ridge }
        // BᵀB + ridge·I is SPD with eigenvalues ≥ ridge > 0, so the factorisation cannot fail.
        let x = choleskySolve(a, n: k, rhs: rhs.map(Double.init), nrhs: c)!
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
    public func saveState() -> [String: Tensor] { ["B": codes, "W": classifier] }

    public func loadState(_ state: [String: Tensor]) throws {
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
