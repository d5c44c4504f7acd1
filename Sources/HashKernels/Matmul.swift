/// Matrix products of 2-d tensors through one OpenBLAS sgemm each: the one place where the core's
/// algorithms (losses, codes, attacks, training) multiply matrices, so none of them repeats the
/// pointer plumbing of `BLAS.sgemm`.
extension Tensor {
    /// α·op(A)·op(B) with op(X) = Xᵀ when `transX`; A, B 2-d with matching inner sizes.
    public static func matmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false,
                              alpha: Float = 1) -> Tensor {
        let m = transA ? a.shape[1] : a.shape[0], n = transB ? b.shape[0] : b.shape[1]
        var c = Tensor(uninitialized: [m, n])
        matmul(a, b, transA: transA, transB: transB, alpha: alpha, beta: 0, into: &c)
        return c
    }

    /// C ← α·op(A)·op(B) + β·C (β = 0 overwrites C, whose shape must be the product's).
    public static func matmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false,
                              alpha: Float = 1, beta: Float, into c: inout Tensor) {
        precondition(a.rank == 2 && b.rank == 2 && c.rank == 2, "matmul: 2-d tensors, got \(a.shape), \(b.shape), \(c.shape)")
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
        precondition(k == kb && c.shape == [m, n], "matmul: \(a.shape)\(transA ? "ᵀ" : "") × \(b.shape)\(transB ? "ᵀ" : "") into \(c.shape)")
        if m == 0 || n == 0 { return }
        if k == 0 {   // BLAS semantics: C ← β·C
            for i in 0..<c.count { c.data[i] = beta == 0 ? 0 : beta * c.data[i] }
            return
        }
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.data.withUnsafeMutableBufferPointer { cp in
                    BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                               a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                               beta: beta, c: cp.baseAddress!, ldc: n)
                }
            }
        }
    }
}
