/// Questions about multi-hot label matrices (rows of 0/1 floats) that attacks, codes, losses and
/// training ask: which rows share a class (relevance, as the papers define it), and which distinct
/// label vectors occur.
public enum LabelSet {
    /// y·Lᵀ (B×N): the number of classes row i of `y` shares with row j of `l`; > 0 means relevant.
    /// Counts are small integers, exact in float32.
    public static func overlaps(_ y: Tensor, _ l: Tensor) -> Tensor {
        Tensor.matmul(y, l, transB: true)
    }

    /// s_ij = [y_iᵀ l_j > 0] (B×N, 0/1 floats): the pairwise similarity of the hashing losses.
    public static func similarity(_ y: Tensor, _ l: Tensor) -> Tensor {
        var s = overlaps(y, l)
        for i in 0..<s.count { s.data[i] = s.data[i] > 0.5 ? 1 : 0 }
        return s
    }

    /// For every row of `y`, the rows of `l` that share a class with it, in ascending order.
    public static func relevant(_ y: Tensor, among l: Tensor) -> [[Int]] {
        let s = overlaps(y, l), n = l.batch
        return (0..<y.batch).map { i in (0..<n).filter { s.data[i * n + $0] > 0 } }
    }

    /// Throws naming `name` unless every value is 0 or 1 (multi-hot labels).
    public static func requireBinary(_ t: Tensor, _ name: String) throws {
        if let i = t.data.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw SAATError.invalidArgument(name, "finite multi-hot 0/1 labels, found \(t.data[i]) at flat index \(i)")
        }
    }

    /// Throws naming `name` unless every value is −1 or +1 (binary codes).
    public static func requireSigns(_ t: Tensor, _ name: String) throws {
        if let i = t.data.firstIndex(where: { $0 != 1 && $0 != -1 }) {
            throw SAATError.invalidArgument(name, "finite binary codes in {-1, +1}, found \(t.data[i]) at flat index \(i)")
        }
    }

    /// The distinct non-empty rows of `labels` in order of first occurrence (one all-ones row when
    /// every row is empty, so callers always have something to draw from).
    public static func uniqueRows(_ labels: Tensor) -> [[Float]] {
        let c = labels.shape[1]
        var seen = Set<[Float]>(), out: [[Float]] = []
        for i in 0..<labels.batch {
            let row = Array(labels.data[(i * c)..<((i + 1) * c)])
            if row.contains(where: { $0 > 0 }) && seen.insert(row).inserted { out.append(row) }
        }
        return out.isEmpty ? [[Float](repeating: 1, count: c)] : out
    }
}
