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

    /// The geometry of one image of the batch.
    public var image: Pool2DGeometry {
        Pool2DGeometry(batch: 1, channels: channels, height: height, width: width, kernel: kernel, stride: stride)
    }

    public var planes: Int { batch * channels }
    public var inputCount: Int { planes * height * width }
    public var outputCount: Int { planes * outHeight * outWidth }
    public var outputShape: [Int] { [batch, channels, outHeight, outWidth] }
}

public enum MaxPool2D {
    /// y ← maxpool(x); argmax ← in-plane index of each maximum.
    ///
    /// Branch-free: the running maximum is updated with selects (`take = val > best || val.isNaN`),
    /// so random data costs no mispredicted branches (the branchy scan spent more time than all of
    /// cnn-small's GEMMs). 2×2 windows with stride 2 (cnn-small, vgg11) run 8 outputs per step on
    /// SIMD8 lanes, with exactly the scalar scan's order and tie rule; a step whose 8 windows hold
    /// a NaN is left to the scalar scan (which gives NaN its win).
    /// The planes are split over `threads` threads (≤ 0: `ParallelFor.computeThreads`).
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               argmax: UnsafeMutablePointer<Int32>, geometry g: Pool2DGeometry, threads: Int = 0) {
        ParallelFor.split(count: g.planes, threads: threads) { _, planes in
            forward(x: x, y: y, argmax: argmax, geometry: g, planes: planes)
        }
    }

    /// `forward` restricted to the planes (n·C + c) in `planes` (for callers that split the work).
    public static func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               argmax: UnsafeMutablePointer<Int32>, geometry g: Pool2DGeometry,
                               planes: Range<Int>) {
        let H = g.height, W = g.width, OH = g.outHeight, OW = g.outWidth, k = g.kernel, s = g.stride
        let fast = k == 2 && s == 2, fast3 = k == 3 && s == 2
        for plane in planes {
            let src = x + plane * H * W
            let dst = y + plane * OH * OW
            let idx = argmax + plane * OH * OW
            for i in 0..<OH {
                var j = 0
                if fast {
                    let h0 = 2 * i
                    let r0 = src + h0 * W, r1 = r0 + W
                    let lane = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
                    // Window offsets 1, W, W + 1 as the bit patterns of float lanes (selects are
                    // bitwise, so the integer comes back exactly with a bit cast).
                    let off1 = Float(bitPattern: 1), offW = Float(bitPattern: UInt32(truncatingIfNeeded: W))
                    let offW1 = Float(bitPattern: UInt32(truncatingIfNeeded: W + 1))
                    while j + 8 <= OW {
                        let l0 = UnsafeRawPointer(r0 + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
                        let l1 = UnsafeRawPointer(r1 + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
                        // A NaN anywhere in the 8 windows: the scalar scan below handles them.
                        if any(l0 .!= l0) || any(l1 .!= l1) { break }
                        // The window offset of the running maximum (0, 1, W, W + 1) is kept in
                        // float lanes so every select uses the float compare's own mask (the
                        // former Int32 selects on `.|`-combined masks were scalarised into word
                        // inserts: the pool took 10% of a forward pass).
                        var best = l0.evenHalf
                        var off = SIMD8<Float>(repeating: 0)
                        let c1 = l0.oddHalf
                        var m = c1 .> best
                        best.replace(with: c1, where: m)
                        off.replace(with: off1, where: m)
                        let c2 = l1.evenHalf
                        m = c2 .> best
                        best.replace(with: c2, where: m)
                        off.replace(with: offW, where: m)
                        let c3 = l1.oddHalf
                        m = c3 .> best
                        best.replace(with: c3, where: m)
                        off.replace(with: offW1, where: m)
                        let base = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: h0 * W + 2 * j)) &+ lane
                        let at = base &+ unsafeBitCast(off, to: SIMD8<Int32>.self)
                        UnsafeMutableRawPointer(dst + i * OW + j).storeBytes(of: best, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(idx + i * OW + j).storeBytes(of: at, as: SIMD8<Int32>.self)
                        j += 8
                    }
                } else if fast3 {
                    // alexnet's overlapping 3×3/2 windows, 8 outputs at a time: columns 2j, 2j + 1
                    // are the even/odd halves of one 16-lane load at 2j, column 2j + 2 the odd half
                    // of the load at 2j + 1 (so a block reads columns up to 2j + 16 only); the nine
                    // candidates in row-major order, a later one taken only when strictly larger
                    // (the scalar scan's first-maximum rule). False when a window holds a NaN
                    // (the scalar scan then handles the block).
                    let h0 = 2 * i
                    let lane = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
                    @inline(__always) func block(_ j: Int) -> Bool {
                        var best = SIMD8<Float>(repeating: 0), off = SIMD8<Float>(repeating: 0)
                        for u in 0..<3 {
                            let r = src + (h0 + u) * W + 2 * j
                            let a = UnsafeRawPointer(r).loadUnaligned(as: SIMD16<Float>.self)
                            let b = UnsafeRawPointer(r + 1).loadUnaligned(as: SIMD16<Float>.self).oddHalf
                            if any(a .!= a) || any(b .!= b) { return false }
                            let cands = (a.evenHalf, a.oddHalf, b)
                            for v in 0..<3 {
                                let c = v == 0 ? cands.0 : (v == 1 ? cands.1 : cands.2)
                                if u == 0 && v == 0 { best = c; continue }
                                let m = c .> best
                                best.replace(with: c, where: m)
                                off.replace(with: Float(bitPattern: UInt32(truncatingIfNeeded: u * W + v)), where: m)
                            }
                        }
                        let base = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: h0 * W + 2 * j)) &+ lane
                        let at = base &+ unsafeBitCast(off, to: SIMD8<Int32>.self)
                        UnsafeMutableRawPointer(dst + i * OW + j).storeBytes(of: best, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(idx + i * OW + j).storeBytes(of: at, as: SIMD8<Int32>.self)
                        return true
                    }
                    // Blocks read columns 2j … 2j + 16: inside the row while 2j + 17 ≤ W.
                    var clean = true
                    while j + 8 <= OW && 2 * j + 17 <= W {
                        if !block(j) { clean = false; break }
                        j += 8
                    }
                    // The last outputs as one more block ending at OW − 1, overlapping the previous
                    // one (its shared outputs are computed again, to the same values). Without
                    // padding 2·OW ≤ W − 1, so that block reads at most column W − 1.
                    if clean && j < OW && OW >= 8 && 2 * (OW - 8) + 17 <= W {
                        if block(OW - 8) { j = OW } else { j = OW - 8 }
                    }
                }
                while j < OW {
                    let h0 = i * s, w0 = j * s
                    var best = -Float.infinity
                    var bestAt = h0 * W + w0
                    for u in 0..<k {
                        let row = (h0 + u) * W
                        for v in 0..<k {
                            let val = src[row + w0 + v]
                            let take = val > best || val.isNaN
                            best = take ? val : best
                            bestAt = take ? row + w0 + v : bestAt
                        }
                    }
                    dst[i * OW + j] = best
                    idx[i * OW + j] = Int32(truncatingIfNeeded: bestAt)
                    j += 1
                }
            }
        }
    }

    /// dx ← 0, then dx[plane, argmax] += dy for every output element.
    /// The planes are split over `threads` threads (≤ 0: `ParallelFor.computeThreads`).
    public static func backward(dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
                                dx: UnsafeMutablePointer<Float>, geometry g: Pool2DGeometry, threads: Int = 0) {
        ParallelFor.split(count: g.planes, threads: threads) { _, planes in
            backward(dy: dy, argmax: argmax, dx: dx, geometry: g, planes: planes)
        }
    }

    /// `backward` restricted to the planes in `planes` (zero-fills and writes only those planes of dx).
    public static func backward(dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>,
                                dx: UnsafeMutablePointer<Float>, geometry g: Pool2DGeometry, planes: Range<Int>) {
        let inPlane = g.height * g.width, outPlane = g.outHeight * g.outWidth
        (dx + planes.lowerBound * inPlane).update(repeating: 0, count: planes.count * inPlane)
        for plane in planes {
            let d = dx + plane * inPlane
            let gy = dy + plane * outPlane
            let idx = argmax + plane * outPlane
            for t in 0..<outPlane { d[Int(idx[t])] += gy[t] }
        }
    }
}
