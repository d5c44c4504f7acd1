/// 2-d max pooling on NCHW float32 batches (as `torch.nn.MaxPool2d(k, s)`: no padding,
/// dilation 1, floor mode), forward with argmax indices and backward by scattering into them.
///
/// Layouts: x (N, C, H, W); y and argmax (N, C, OH, OW) with OH = (H − k)/s + 1, OW = (W − k)/s + 1.
/// y[n, c, i, j] = max_{0 ≤ u, v < k} x[n, c, i·s + u, j·s + v]; argmax holds the position of that
/// maximum *inside its input plane*, h·W + w (Int32). Scan order is row-major over the window
/// and the first maximum wins on ties; a NaN wins over numbers (the last NaN of the window),
/// matching PyTorch's CPU kernel (`val > maxval || isnan(val)`).
/// Backward: ∂x[n, c, argmax[n, c, i, j]] += ∂y[n, c, i, j] (overlapping windows add up).
public struct Pool2DGeometry: Equatable, Sendable {
    public let batch: Int, channels: Int, height: Int, width: Int
    public let kernel: Int, stride: Int
    public let outHeight: Int, outWidth: Int

    public init(batch: Int, channels: Int, height: Int, width: Int, kernel: Int, stride: Int) {
        precondition(batch >= 0 && channels > 0 && height > 0 && width > 0, "MaxPool2D: bad input sizes")
        precondition(kernel > 0 && stride > 0, "MaxPool2D: bad kernel/stride")
        precondition(height >= kernel && width >= kernel, "MaxPool2D: kernel \(kernel) larger than \(height)x\(width)")
        precondition(height * width <= Int(Int32.max), "MaxPool2D: plane too large for Int32 indices")
        self.batch = batch; self.channels = channels; self.height = height; self.width = width
        self.kernel = kernel; self.stride = stride
        self.outHeight = (height - kernel) / stride + 1
        self.outWidth = (width - kernel) / stride + 1
    }

    public var planes: Int { batch * channels }
    public var inputCount: Int { planes * height * width }
    public var outputCount: Int { planes * outHeight * outWidth }
    public var outputShape: [Int] { [batch, channels, outHeight, outWidth] }
}

public enum MaxPool2D {
    /// y ← maxpool(x); argmax ← in-plane index of each maximum.
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               argmax: UnsafeMutablePointer<Int32>, geometry g: Pool2DGeometry) {
        let H = g.height, W = g.width, OH = g.outHeight, OW = g.outWidth, k = g.kernel, s = g.stride
        for plane in 0..<g.planes {
            let src = x + plane * H * W
            let dst = y + plane * OH * OW
            let idx = argmax + plane * OH * OW
            for i in 0..<OH {
                for j in 0..<OW {
                    let h0 = i * s, w0 = j * s
                    var best = -Float.infinity
                    var bestAt = h0 * W + w0
                    for u in 0..<k {
                        let row = (h0 + u) * W
                        for v in 0..<k {
                            let val = src[row + w0 + v]
                            if val > best || val.isNaN { best = val; bestAt = row + w0 + v }
                        }
                    }
                    dst[i * OW + j] = best
                    idx[i * OW + j] = Int32(truncatingIfNeeded: bestAt)
                }
            }
        }
    }

    /// dx ← 0, then dx[plane, argmax] += dy for every output element.
    public static func backward(dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
                                dx: UnsafeMutablePointer<Float>, geometry g: Pool2DGeometry) {
        let inPlane = g.height * g.width, outPlane = g.outHeight * g.outWidth
        dx.update(repeating: 0, count: g.inputCount)
        for plane in 0..<g.planes {
            let d = dx + plane * inPlane
            let gy = dy + plane * outPlane
            let idx = argmax + plane * outPlane
            for t in 0..<outPlane { d[Int(idx[t])] += gy[t] }
        }
    }
}
