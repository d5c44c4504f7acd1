/// A dense float32 tensor: contiguous row-major storage plus a shape.
///
/// Image batches use PyTorch's NCHW layout: `shape == [N, C, H, W]`, element
/// `(n, c, h, w)` at `((n * C + c) * H + h) * W + w`. Value semantics (copy on write
/// through `[Float]`); hot loops go through `withUnsafe(Mutable)BufferPointer`.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    /// A zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// A tensor of the given shape whose values are unspecified (no zero-fill pass): only for
    /// outputs that a kernel then overwrites completely (the layers' y and dx buffers).
    public init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        let n = shape.reduce(1, *)
        self.shape = shape
        self.data = [Float](unsafeUninitializedCapacity: n) { _, count in count = n }
    }

    /// A tensor of the given shape filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Wraps `data` (row-major) with `shape`; `data.count` must equal the product of `shape`.
    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count,
                     "Tensor: \(data.count) values do not fill shape \(shape)")
        self.shape = shape
        self.data = data
    }

    /// Copies `count` values from a raw pointer.
    public init(shape: [Int], copying ptr: UnsafePointer<Float>) {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.data = Array(UnsafeBufferPointer(start: ptr, count: n))
    }

    @inlinable public var count: Int { data.count }
    @inlinable public var rank: Int { shape.count }
    /// Size of the leading (batch) dimension; 0 for a scalar-shaped tensor.
    @inlinable public var batch: Int { shape.first ?? 0 }
    /// Number of values per item of the leading dimension.
    @inlinable public var itemSize: Int { shape.count <= 1 ? 1 : shape.dropFirst().reduce(1, *) }

    /// Same values, new shape with the same number of elements.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "reshape \(shape) -> \(newShape)")
        return Tensor(shape: newShape, data: data)
    }

    /// Items `[start, start + n)` of the leading dimension, copied.
    public func slice(_ start: Int, _ n: Int) -> Tensor {
        precondition(start >= 0 && n >= 0 && start + n <= batch, "slice out of range")
        var s = shape; s[0] = n
        let sz = itemSize
        return Tensor(shape: s, data: Array(data[(start * sz)..<((start + n) * sz)]))
    }

    /// Items at `indices` of the leading dimension, copied, in that order.
    public func gather(_ indices: [Int]) -> Tensor {
        var s = shape; s[0] = indices.count
        let sz = itemSize
        var out = [Float](repeating: 0, count: indices.count * sz)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (r, i) in indices.enumerated() {
                    precondition(i >= 0 && i < batch, "gather index \(i) out of range 0..<\(batch)")
                    (dst.baseAddress! + r * sz).update(from: src.baseAddress! + i * sz, count: sz)
                }
            }
        }
        return Tensor(shape: s, data: out)
    }

    /// A new tensor of `a`'s shape written by `kernel(a, b, out, count)` over the raw buffers of two
    /// tensors of the same size (an elementwise kernel such as `Elementwise.multiply`).
    public static func elementwise(_ a: Tensor, _ b: Tensor,
                                   _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        precondition(a.count == b.count, "elementwise: \(a.shape) and \(b.shape) differ in size")
        var out = Tensor(uninitialized: a.shape)
        if a.count == 0 { return out }
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                out.data.withUnsafeMutableBufferPointer { kernel(ap.baseAddress!, bp.baseAddress!, $0.baseAddress!, a.count) }
            }
        }
        return out
    }

    /// Sets every value to zero, keeping the shape.
    public mutating func zero() {
        data.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// True when every value is finite (no NaN, no ±inf).
    public var allFinite: Bool {
        data.withUnsafeBufferPointer { p in
            for v in p where !v.isFinite { return false }
            return true
        }
    }
}
