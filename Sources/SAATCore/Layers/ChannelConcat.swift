import HashKernels

/// Channel concatenation of two NCHW tensors, as `torch.cat([a, b], dim=1)`:
/// (N, Ca, H, W) and (N, Cb, H, W) → (N, Ca + Cb, H, W), image n holding a[n]'s channels then
/// b[n]'s. Backward splits ∂y into ∂a = ∂y[:, :Ca] and ∂b = ∂y[:, Ca:]. Pure copies (exact).
/// Two inputs, so not a `Layer`: a network with a skip connection calls it directly.
public final class ChannelConcat {
    private var channels: (Int, Int)?

    public init() {}

    /// Works for any rank ≥ 2 with equal trailing dimensions (NCHW, or (N, C) features).
    public func forward(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank >= 2 && b.rank == a.rank && a.shape[0] == b.shape[0] &&
                     Array(a.shape.dropFirst(2)) == Array(b.shape.dropFirst(2)),
                     "ChannelConcat: cannot concatenate \(a.shape) and \(b.shape) along channels")
        let n = a.shape[0], sa = a.itemSize, sb = b.itemSize
        var shape = a.shape
        shape[1] += b.shape[1]
        var y = Tensor(uninitialized: shape)
        if y.count > 0 {
            a.data.withUnsafeBufferPointer { ap in
                b.data.withUnsafeBufferPointer { bp in
                    y.data.withUnsafeMutableBufferPointer { yp in
                        for img in 0..<n {
                            let dst = yp.baseAddress! + img * (sa + sb)
                            if sa > 0 { Elementwise.copy(ap.baseAddress! + img * sa, to: dst, count: sa) }
                            if sb > 0 { Elementwise.copy(bp.baseAddress! + img * sb, to: dst + sa, count: sb) }
                        }
                    }
                }
            }
        }
        channels = (a.shape[1], b.shape[1])
        return y
    }

    /// (∂a, ∂b) for ∂y of the last forward's output shape.
    public func backward(_ dy: Tensor) -> (Tensor, Tensor) {
        guard let (ca, cb) = channels else { preconditionFailure("ChannelConcat.backward before forward") }
        precondition(dy.rank >= 2 && dy.shape[1] == ca + cb,
                     "ChannelConcat.backward: expected \(ca + cb) channels, got \(dy.shape)")
        let n = dy.shape[0], rest = dy.shape.dropFirst(2).reduce(1, *), sa = ca * rest, sb = cb * rest
        var sha = dy.shape, shb = dy.shape
        sha[1] = ca; shb[1] = cb
        var da = Tensor(uninitialized: sha), db = Tensor(uninitialized: shb)
        if dy.count == 0 { return (da, db) }
        dy.data.withUnsafeBufferPointer { dp in
            da.data.withUnsafeMutableBufferPointer { ap in
                db.data.withUnsafeMutableBufferPointer { bp in
                    for img in 0..<n {
                        let src = dp.baseAddress! + img * (sa + sb)
                        if sa > 0 { Elementwise.copy(src, to: ap.baseAddress! + img * sa, count: sa) }
                        if sb > 0 { Elementwise.copy(src + sa, to: bp.baseAddress! + img * sb, count: sb) }
                    }
                }
            }
        }
        return (da, db)
    }
}
