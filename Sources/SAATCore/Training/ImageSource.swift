/// Read-only access to a set of images stored contiguously as N×C×H×W float32 (e.g. a numpy
/// array the bridge holds for the duration of one call). No copy of the whole set is made.
public struct ImageSource {
    public let base: UnsafePointer<Float>
    public let count: Int
    public let itemShape: [Int]
    public var itemSize: Int { itemShape.reduce(1, *) }

    public init(base: UnsafePointer<Float>, count: Int, itemShape: [Int]) {
        self.base = base
        self.count = count
        self.itemShape = itemShape
    }

    /// The images at `indices`, copied into one batch tensor.
    public func batch(_ indices: [Int]) -> Tensor {
        let sz = itemSize
        var t = Tensor(zeros: [indices.count] + itemShape)
        t.data.withUnsafeMutableBufferPointer { dst in
            for (r, i) in indices.enumerated() {
                precondition(i >= 0 && i < count)
                (dst.baseAddress! + r * sz).update(from: base + i * sz, count: sz)
            }
        }
        return t
    }

    /// Images [start, start+n) as one tensor.
    public func range(_ start: Int, _ n: Int) -> Tensor {
        Tensor(shape: [n] + itemShape, copying: base + start * itemSize)
    }
}

/// Labels of a set, N×C multi-hot 0/1 floats (copied once; small).
public extension Tensor {
    /// Rows at `indices` of an N×C matrix.
    func rows(_ indices: [Int]) -> Tensor { gather(indices) }
}
