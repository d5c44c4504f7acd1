/// Dropout, as `torch.nn.Dropout(p)` (inverted dropout).
///
/// Train mode: y = x ⊙ m with m_i = 1/(1−p) with probability 1−p and 0 otherwise, drawn fresh at
/// every forward from `rng`: one `rng.next()` per element in row-major order, element kept iff
/// its top 24 bits u (the value behind `rng.uniform()` = u/2²⁴) satisfy u/2²⁴ ≥ p. Backward:
/// ∂x = ∂y ⊙ m with the mask of the last forward. Eval mode, or p = 0: identity (no draw).
/// p = 1 drops everything (y = 0, as PyTorch). PyTorch's own generator differs, so masks differ
/// from torch's for the same seed; the distribution is the same.
/// `rng` is public so checkpoints can save it and tests can replay a mask.
public final class Dropout: Layer {
    public let p: Float
    public var rng: SeededRNG
    /// Mask of the last train-mode forward (nil: the last forward was the identity).
    public private(set) var mask: Tensor?
    /// Data-parallel training: the forward's input holds only rows `rows` of a batch of `total`;
    /// the masks are drawn for all `total` rows (as one process computing them all would) and the
    /// given rows kept. nil: the input is the whole batch.
    public var rowSelection: DropoutRows?

    public init(p: Float, seed: UInt64) {
        precondition(p >= 0 && p <= 1, "Dropout: p must be in [0, 1], got \(p)")
        self.p = p
        self.rng = SeededRNG(seed: seed)
    }

    public func outputShape(_ input: [Int]) -> [Int] { input }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        guard mode == .train, p > 0 else { mask = nil; return x }
        let n = x.count
        var m = Tensor(zeros: x.shape)
        if p < 1 {
            let scale = 1 / (1 - p)
            // u/2²⁴ ≥ p ⟺ u ≥ ⌈p·2²⁴⌉ (p·2²⁴ is exact in Float).
            let threshold = UInt64((p * 16_777_216).rounded(.up))
            m.data.withUnsafeMutableBufferPointer { mp in
                if let sel = rowSelection {
                    precondition(sel.rows.count == x.batch, "Dropout: \(x.batch) rows given for a selection of \(sel.rows.count)")
                    let f = x.batch > 0 ? n / x.batch : 0
                    var next = 0
                    for r in 0..<sel.total {
                        let keep = next < sel.rows.count && sel.rows[next] == r
                        let dst = next * f
                        for i in 0..<f where (rng.next() >> 40) >= threshold && keep { mp[dst + i] = scale }
                        if keep { next += 1 }
                    }
                } else {
                    for i in 0..<n where (rng.next() >> 40) >= threshold { mp[i] = scale }
                }
            }
        }
        let y = Tensor.elementwise(x, m) { Elementwise.multiply($0, $1, into: $2, count: $3) }
        mask = m
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let m = mask else { return dy }
        precondition(dy.shape == m.shape, "Dropout.backward: expected dy \(m.shape), got \(dy.shape)")
        let dx = Tensor.elementwise(dy, m) { Elementwise.multiply($0, $1, into: $2, count: $3) }
        return dx
    }
}
