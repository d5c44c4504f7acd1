/// Synchronous data-parallel training over several processes (MPI ranks in practice).
///
/// Every process holds the same training arrays, the same model and the same method state, and
/// walks the same seeded batch order. Of each global batch of B images, process r computes the
/// contiguous rows `ParallelFor.partRange(r, of: size, count: B)`: their forward pass, the inner
/// attack of adversarial training, and their backward pass. What the loss needs from the whole
/// batch (the outputs of every row: hashing losses compare a batch against a memory of all
/// outputs, and write it) is gathered to every process (`allgather`), so the loss, its gradient,
/// the memory banks, the guide codes and every random choice are computed identically
/// everywhere; each process back-propagates its own rows of that gradient. The parameter
/// gradients are then summed over the processes with one `allreduceSum` on a flat buffer, and
/// every process takes the same optimiser step. Random choices per image (random starts,
/// dropout masks) are drawn for the whole batch (by image position, or row by row in batch
/// order), so a run on P processes computes the same quantities as one process with the same
/// global batch; only the order of floating-point sums over the batch differs (parameter
/// gradients), which keeps the weights equal to rounding.
public protocol CollectiveGroup: AnyObject {
    /// This process's rank, in 0..<size.
    var rank: Int { get }
    /// Number of processes.
    var size: Int { get }
    /// Replaces `count` floats at `buffer` by their element-wise sum over all processes (the same
    /// result on every process).
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Concatenates every process's `counts[r]` floats in rank order into `out` (on every process);
    /// `local` holds this process's `counts[rank]` floats.
    func allgather(_ local: UnsafePointer<Float>, counts: [Int], into out: UnsafeMutablePointer<Float>) throws
}

/// What a training method needs to run one step data-parallel: its rows of the batch, gathering
/// rows, summing gradients. `DataParallel.single` is the one-process case (no communication).
public struct DataParallel {
    public let group: CollectiveGroup?

    public static let single = DataParallel(group: nil)

    public init(group: CollectiveGroup?) { self.group = group }

    public var rank: Int { group?.rank ?? 0 }
    public var size: Int { group?.size ?? 1 }

    /// The rows of a batch of `count` images that this process computes.
    public func localRows(_ count: Int) -> Range<Int> {
        ParallelFor.partRange(rank, of: size, count: count)
    }

    /// The rows of the whole batch (B × K) from every process's rows `local` (n × K): `local`
    /// itself in one process.
    public func gather(_ local: Tensor, batch: Int) throws -> Tensor {
        guard let group, group.size > 1 else { return local }
        let k = local.shape.dropFirst().reduce(1, *)   // per row (a process may have no rows)
        let counts = (0..<group.size).map { ParallelFor.partRange($0, of: group.size, count: batch).count * k }
        precondition(counts[group.rank] == local.count, "DataParallel.gather: local rows do not match the split")
        var out = Tensor(zeros: [batch] + Array(local.shape.dropFirst()))
        var one: Float = 0   // a valid address for an empty buffer (no float is read or written)
        try local.data.withUnsafeBufferPointer { lp in
            try out.data.withUnsafeMutableBufferPointer { op in
                try withUnsafeMutablePointer(to: &one) { dummy in
                    try group.allgather(lp.baseAddress ?? UnsafePointer(dummy), counts: counts, into: op.baseAddress ?? dummy)
                }
            }
        }
        return out
    }

    /// Whether any process has `stop` set (one collective of one float); false in one process.
    public func anyStops(_ stop: Bool) throws -> Bool {
        guard let group, group.size > 1 else { return stop }
        var flag: Float = stop ? 1 : 0
        try withUnsafeMutablePointer(to: &flag) { try group.allreduceSum($0, count: 1) }
        return flag > 0
    }

    /// Sums the model's parameter gradients over the processes (one collective on a flat buffer).
    public func sumGradients(_ params: [Param]) throws {
        guard let group, group.size > 1 else { return }
        let total = params.reduce(0) { $0 + $1.grad.count }
        let flat = UnsafeMutablePointer<Float>.allocate(capacity: max(1, total))
        defer { flat.deallocate() }
        var at = 0
        for p in params {
            p.grad.data.withUnsafeBufferPointer { (flat + at).update(from: $0.baseAddress!, count: p.grad.count) }
            at += p.grad.count
        }
        try group.allreduceSum(flat, count: total)
        at = 0
        for p in params {
            let c = p.grad.count
            p.grad.data.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: flat + at, count: c) }
            at += c
        }
    }

    /// Runs `body` with the model's dropout layers drawing their masks for all `total` rows of a
    /// forward pass and keeping `rows` (this process's rows, ascending): the masks of those rows
    /// are then the ones one process computing all rows would draw. One process: just `body`.
    public func withDropoutRows<R>(_ model: HashingModel, total: Int, rows: [Int], _ body: () throws -> R) rethrows -> R {
        guard size > 1 else { return try body() }
        model.dropoutRowSelection = DropoutRows(total: total, rows: rows)
        defer { model.dropoutRowSelection = nil }
        return try body()
    }
}

/// The rows a dropout layer keeps of a forward pass it draws masks for in full (`total` rows in
/// row-major order, one draw per element); `rows` ascending, one per input row.
public struct DropoutRows: Sendable, Equatable {
    public let total: Int
    public let rows: [Int]
    public init(total: Int, rows: [Int]) { self.total = total; self.rows = rows }
}
