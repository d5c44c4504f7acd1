/// 2-d convolution (cross-correlation, as `torch.nn.functional.conv2d`) on NCHW float32 batches,
/// forward and backward, through im2col + OpenBLAS sgemm, or Winograd for the forward and input
/// gradient of stride-1 layers with ≥ 16 channels on large enough images (`Winograd.tileSize`:
/// F(4×4, 3×3) for vgg11's 3×3 layers from 112×112 to 28×28, F(2×2, 3×3) for vgg11's 14×14,
/// alexnet's 13×13 and cnn-small's 16×16 layers, F(2×2, 5×5) for alexnet's 5×5 layer), or `DirectConv` for layers
/// with ≤ 4 input channels.
///
/// Layouts (row-major, PyTorch's):
/// - input  x  (N, C, H, W)
/// - weight w  (O, C, k, k), read as the matrix W (O, C·k·k)
/// - bias   b  (O)
/// - output y  (N, O, OH, OW), OH = (H + 2p − k)/s + 1, OW = (W + 2p − k)/s + 1 (floor)
///
/// Forward:  y[n, o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x[n, c, i·s − p + u, j·s − p + v]
/// (x is zero outside the image). Backward, with δ = ∂L/∂y:
/// - ∂x[n, c, h, w̃] = Σ_{o, u, v : h = i·s − p + u, w̃ = j·s − p + v} w[o, c, u, v] · δ[n, o, i, j]
/// - ∂w[o, c, u, v] = Σ_{n, i, j} δ[n, o, i, j] · x[n, c, i·s − p + u, j·s − p + v]
/// - ∂b[o] = Σ_{n, i, j} δ[n, o, i, j]
///
/// Method: the batch is split into `threads` contiguous parts of images (`ParallelFor.split`), each
/// run in its own thread with single-threaded OpenBLAS. Per image, the column matrix `cols`
/// (C·k·k, OH·OW) holds in row (c·k + u)·k + v and column i·OW + j the input value
/// x[n, c, i·s − p + u, j·s − p + v], and y[n] (O, OH·OW) = W·cols is computed straight into the
/// NCHW output in slabs of output rows (`slabRows`: a slab's columns stay in cache between im2col
/// and the GEMM), then bias (and the fused ReLU) in one pass while it is in cache. Backward per image: δ[n] is already the (O, OH·OW)
/// matrix, ∂cols = Wᵀ·δ[n] is scattered back with col2im (+=), and, only when asked,
/// ∂W += δ[n]·colsᵀ (cols recomputed from x) and ∂b += row sums of δ[n], accumulated per part and
/// added in part order at the end.
/// Why per image and per thread (measured on 2 Zen 4 cores, cnn-small conv2, 64×288×256 per
/// image): one-image GEMMs on one thread run at 91 GFLOP/s and their 295 KB column matrix stays
/// in L2, while multi-image chunks fall to 69 GFLOP/s and two-thread OpenBLAS on one image's GEMM
/// leaves the cores idle between the single-threaded im2col/col2im passes.
/// Forward outputs and ∂x do not depend on the thread count (each image is computed alone, the
/// Winograd tile blocks depend only on the layer's sizes); ∂W and ∂b are bitwise reproducible for
/// a fixed thread count (their per-part sums are added in part order).
public struct Conv2DGeometry: Equatable, Sendable {
    public let batch: Int, inChannels: Int, height: Int, width: Int
    public let outChannels: Int, kernel: Int, stride: Int, padding: Int
    public let outHeight: Int, outWidth: Int

    /// Geometry of a convolution; traps on non-positive sizes or a kernel larger than the padded input.
    public init(batch: Int, inChannels: Int, height: Int, width: Int,
                outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        precondition(batch >= 0 && inChannels > 0 && height > 0 && width > 0 && outChannels > 0,
                     "Conv2D: bad sizes N=\(batch) C=\(inChannels) H=\(height) W=\(width) O=\(outChannels)")
        precondition(kernel > 0 && stride > 0 && padding >= 0, "Conv2D: bad kernel/stride/padding")
        precondition(height + 2 * padding >= kernel && width + 2 * padding >= kernel,
                     "Conv2D: kernel \(kernel) larger than padded input \(height)x\(width) (+2·\(padding))")
        self.batch = batch; self.inChannels = inChannels; self.height = height; self.width = width
        self.outChannels = outChannels; self.kernel = kernel; self.stride = stride; self.padding = padding
        self.outHeight = (height + 2 * padding - kernel) / stride + 1
        self.outWidth = (width + 2 * padding - kernel) / stride + 1
    }

    /// Rows of the column matrix: C·k·k (= fan-in of one output unit).
    @inlinable public var patchSize: Int { inChannels * kernel * kernel }
    /// Output pixels per image and channel: OH·OW.
    @inlinable public var outPlane: Int { outHeight * outWidth }
    /// Input pixels per image and channel: H·W.
    @inlinable public var inPlane: Int { height * width }
    public var inputCount: Int { batch * inChannels * inPlane }
    public var outputCount: Int { batch * outChannels * outPlane }
    public var weightCount: Int { outChannels * patchSize }
    /// Output shape [N, O, OH, OW].
    public var outputShape: [Int] { [batch, outChannels, outHeight, outWidth] }

}

public enum Conv2D {
    // MARK: im2col / col2im

    /// Floats of the zero-padded copy of one image, C·(H + 2p)·(W + 2p), that im2col/col2im use.
    @inlinable public static func paddedCount(_ g: Conv2DGeometry) -> Int {
        g.inChannels * (g.height + 2 * g.padding) * (g.width + 2 * g.padding)
    }

    /// Copies image `n` of x into `pad` (C, H + 2p, W + 2p) with a zero border of width p.
    @inlinable
    static func padImage(_ x: UnsafePointer<Float>, _ g: Conv2DGeometry, image n: Int, into pad: UnsafeMutablePointer<Float>) {
        let p = g.padding, H = g.height, W = g.width, Wp = W + 2 * p, Hp = H + 2 * p
        for c in 0..<g.inChannels {
            let src = x + (n * g.inChannels + c) * g.inPlane
            let dst = pad + c * Hp * Wp
            if p > 0 {
                Elementwise.fillZero(dst, count: p * Wp)
                Elementwise.fillZero(dst + (p + H) * Wp, count: p * Wp)
            }
            for h in 0..<H {
                let row = dst + (h + p) * Wp
                for j in 0..<p { row[j] = 0; row[p + W + j] = 0 }
                Elementwise.copy(src + h * W, to: row + p, count: W)
            }
        }
    }

    /// Fills `cols` (C·k·k, nc·OH·OW) from images [n0, n0 + nc) of x; every entry is written
    /// (zeros for padding). Each image is first copied into a zero-padded buffer (`scratch`, at
    /// least `paddedCount(g)` floats; allocated when nil), so every row of `cols` is a plain
    /// (stride-1) or strided copy with no border tests: 3–4× faster than clipping each row.
    public static func im2col(_ x: UnsafePointer<Float>, _ g: Conv2DGeometry, first n0: Int, count nc: Int,
                              cols: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>? = nil) {
        let owned = scratch == nil ? UnsafeMutablePointer<Float>.allocate(capacity: paddedCount(g)) : nil
        defer { owned?.deallocate() }
        let pad = scratch ?? owned!
        for img in 0..<nc {
            padImage(x, g, image: n0 + img, into: pad)
            fillColumns(pad, g, rows: 0..<g.outHeight, cols: cols + img * g.outPlane, ld: nc * g.outPlane)
        }
    }

    /// Writes the column-matrix entries of output rows `rows` of one zero-padded image `pad`
    /// (`padImage`): row (c·k + u)·k + v of `cols` (leading dimension `ld`), column
    /// (i − rows.lowerBound)·OW + j, holds the padded input at (i·s + u, j·s + v).
    @inlinable
    static func fillColumns(_ pad: UnsafePointer<Float>, _ g: Conv2DGeometry, rows: Range<Int>,
                            cols: UnsafeMutablePointer<Float>, ld: Int) {
        let k = g.kernel, s = g.stride, Wp = g.width + 2 * g.padding, Hp = g.height + 2 * g.padding
        let OW = g.outWidth
        for c in 0..<g.inChannels {
            let plane = pad + c * Hp * Wp
            for u in 0..<k {
                for v in 0..<k {
                    let dstRow = cols + ((c * k + u) * k + v) * ld
                    for i in rows {
                        let src = plane + (i * s + u) * Wp + v
                        let dst = dstRow + (i - rows.lowerBound) * OW
                        if s == 1 {
                            Elementwise.copy(src, to: dst, count: OW)
                        } else {
                            for j in 0..<OW { dst[j] = src[j * s] }
                        }
                    }
                }
            }
        }
    }

    /// Output rows per im2col slab of the forward: the slab's column matrix (C·k·k × rows·OW)
    /// within 64 Ki floats (256 KiB, cache-resident until the GEMM packs it), but at least 256
    /// columns wide so the GEMM stays efficient; a whole image when that is smaller. Depends only
    /// on the layer's sizes.
    @inlinable static func slabRows(_ g: Conv2DGeometry) -> Int {
        let byCache = (1 << 16) / max(1, g.patchSize * g.outWidth)
        let byWidth = (256 + g.outWidth - 1) / g.outWidth
        return min(g.outHeight, max(1, byCache, byWidth))
    }

    /// Adds `cols` (C·k·k, nc·OH·OW) back into images [n0, n0 + nc) of dx (the adjoint of im2col:
    /// the two walk the same (c, u, v, i) loops on purpose, one copying out, one adding back),
    /// through a zero-padded accumulator (`scratch`, ≥ `paddedCount(g)` floats; allocated when nil).
    /// With `overwrite` the images of dx are set to the result instead of added to (saves zeroing).
    public static func col2im(_ cols: UnsafePointer<Float>, _ g: Conv2DGeometry, first n0: Int, count nc: Int,
                              into dx: UnsafeMutablePointer<Float>, overwrite: Bool = false,
                              scratch: UnsafeMutablePointer<Float>? = nil) {
        let owned = scratch == nil ? UnsafeMutablePointer<Float>.allocate(capacity: paddedCount(g)) : nil
        defer { owned?.deallocate() }
        let pad = scratch ?? owned!
        let k = g.kernel, s = g.stride, p = g.padding, W = g.width, H = g.height
        let Wp = W + 2 * p, Hp = H + 2 * p
        let OH = g.outHeight, OW = g.outWidth, P = g.outPlane, ld = nc * P
        for img in 0..<nc {
            Elementwise.fillZero(pad, count: paddedCount(g))
            for c in 0..<g.inChannels {
                let plane = pad + c * Hp * Wp
                for u in 0..<k {
                    for v in 0..<k {
                        let srcRow = cols + ((c * k + u) * k + v) * ld + img * P
                        for i in 0..<OH {
                            let dst = plane + (i * s + u) * Wp + v
                            let src = srcRow + i * OW
                            if s == 1 {
                                Elementwise.add(src, into: dst, count: OW)
                            } else {
                                for j in 0..<OW { dst[j * s] += src[j] }
                            }
                        }
                    }
                }
                let out = dx + ((n0 + img) * g.inChannels + c) * g.inPlane
                for h in 0..<H {
                    let row = plane + (h + p) * Wp + p
                    if overwrite {
                        Elementwise.copy(row, to: out + h * W, count: W)
                    } else {
                        Elementwise.add(row, into: out + h * W, count: W)
                    }
                }
            }
        }
    }

    // MARK: fused epilogue / prologue

    /// Max pooling fused after the ReLU of a convolution (`forward(…, relu: true, pool:)`): the
    /// pooled output and argmax (`MaxPool2D` layouts) of the ReLU'd convolution output.
    public struct PoolOutput {
        public var geometry: Pool2DGeometry
        public var y: UnsafeMutablePointer<Float>
        public var argmax: UnsafeMutablePointer<Int32>
        public init(geometry: Pool2DGeometry, y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>) {
            self.geometry = geometry; self.y = y; self.argmax = argmax
        }
    }

    /// The gradient side of a fused conv → ReLU → max-pool block (`backward(…, relu:, pool:)`).
    public struct PoolGradient {
        public var geometry: Pool2DGeometry
        public var argmax: UnsafePointer<Int32>
        public init(geometry: Pool2DGeometry, argmax: UnsafePointer<Int32>) {
            self.geometry = geometry; self.argmax = argmax
        }
    }

    // MARK: forward / backward

    /// Floats of scratch memory `forward`/`backward` need for `g` on `threads` threads (≤ 0:
    /// `ParallelFor.computeThreads`): per part, one image's column matrix, padded copy, output
    /// gradient and Winograd scratch and the part's ∂W/∂b partial sums; then, with
    /// `includingFilters`, the transformed filters of a Winograd layer (a caller that always
    /// passes `filters` to `forward`/`backward` needs no room for them). A caller that passes
    /// a `workspace` of this size (e.g. a layer keeping one per batch size) saves a malloc/free
    /// with its page faults per call; without one the kernels allocate it themselves. Contents are
    /// scratch.
    public static func workspaceCount(_ g: Conv2DGeometry, threads: Int = 0, includingFilters: Bool = true) -> Int {
        partStride(g) * ParallelFor.parts(count: g.batch, threads: threads)
            + (includingFilters ? filterCount(g) : 0)
            + (DirectConv.applies(g) ? DirectConv.weightCount(g) : 0)
    }

    /// Floats of a Winograd layer's transformed filters (forward or adjoint, `transformFilters`);
    /// 0 when the layer does not use Winograd.
    public static func filterCount(_ g: Conv2DGeometry) -> Int {
        Winograd.tileSize(g).map {
            Winograd.filterCount(inChannels: g.inChannels, outChannels: g.outChannels, tile: $0, kernel: g.kernel)
        } ?? 0
    }

    /// Writes the transformed filters of a Winograd layer (`Winograd.applies(g)`) into `U`
    /// (`filterCount(g)` floats): the forward's, or with `adjoint` the input gradient's. They
    /// depend only on w, the layer's channel counts and kernel and its tile size
    /// (`Winograd.tileSize(g)`, which depends on the image size), never on the batch or the
    /// thread count; `forward(filters:)` and `backward(filters:)` take them as they are, so a
    /// caller whose weights stay fixed over many calls (an attack's steps, an encoding pass)
    /// transforms them once.
    public static func transformFilters(_ w: UnsafePointer<Float>, _ g: Conv2DGeometry, adjoint: Bool,
                                        into U: UnsafeMutablePointer<Float>, threads: Int = 0) {
        guard let tile = Winograd.tileSize(g) else { preconditionFailure("Conv2D.transformFilters: not a Winograd layer") }
        Winograd.transformFilters(w, outChannels: g.outChannels, inChannels: g.inChannels, tile: tile,
                                  kernel: g.kernel, adjoint: adjoint, into: U, threads: threads)
    }

    @inlinable static func partStride(_ g: Conv2DGeometry) -> Int {
        g.patchSize * g.outPlane + paddedCount(g) + g.outChannels * g.outPlane + g.weightCount
            + g.outChannels + winogradScratch(g) + (DirectConv.applies(g) ? DirectConv.scratchCount(g) : 0)
    }

    /// Per-part scratch of the Winograd paths (forward C → O, input gradient O → C); 0 when the
    /// layer does not use Winograd.
    @inlinable static func winogradScratch(_ g: Conv2DGeometry) -> Int {
        guard let m = Winograd.tileSize(g) else { return 0 }
        return max(Winograd.scratchCount(cin: g.inChannels, cout: g.outChannels, height: g.height, width: g.width,
                                         tile: m, kernel: g.kernel),
                   Winograd.scratchCount(cin: g.outChannels, cout: g.inChannels, height: g.height, width: g.width,
                                         tile: m, kernel: g.kernel))
    }

    /// The transformed filters of a Winograd layer (forward, or the input gradient's with
    /// `adjoint`), written to their place in the workspace, after the parts' scratch.
    /// The filters are taken from `given` when the caller passed them (the workspace then may
    /// have no room for them).
    static func winogradFilters(_ w: UnsafePointer<Float>, _ g: Conv2DGeometry, _ ws: UnsafeMutablePointer<Float>,
                                adjoint: Bool, given: UnsafePointer<Float>?, threads: Int) -> UnsafePointer<Float> {
        if let given { return given }
        let U = ws + partStride(g) * ParallelFor.parts(count: g.batch, threads: threads)
        transformFilters(w, g, adjoint: adjoint, into: U, threads: threads)
        return UnsafePointer(U)
    }

    /// The repacked weights of a `DirectConv` layer, after the parts' scratch (DirectConv layers
    /// have no Winograd filters before them).
    static func sharedWeights(_ g: Conv2DGeometry, _ ws: UnsafeMutablePointer<Float>, threads: Int) -> UnsafeMutablePointer<Float> {
        ws + partStride(g) * ParallelFor.parts(count: g.batch, threads: threads)
    }

    /// One part's slice of the workspace (`partStride` floats): one image's column matrix, padded
    /// copy and output or output gradient, the part's ∂W and ∂b sums and the Winograd scratch.
    struct PartScratch {
        let cols, pad, image, dWeight, dBias, winograd, direct: UnsafeMutablePointer<Float>
        init(_ ws: UnsafeMutablePointer<Float>, part: Int, _ g: Conv2DGeometry) {
            cols = ws + part * partStride(g)
            pad = cols + g.patchSize * g.outPlane
            image = pad + paddedCount(g)
            dWeight = image + g.outChannels * g.outPlane
            dBias = dWeight + g.weightCount
            winograd = dBias + g.outChannels
            direct = winograd + winogradScratch(g)
        }
    }

    /// y ← conv2d(x, w) + b for the whole batch. `bias` may be nil (no bias).
    /// Buffers: x (N,C,H,W), w (O,C,k,k), b (O), y (N,O,OH,OW); y is fully overwritten.
    /// Fused epilogue, per image while its output is in cache: with `relu`, y ← max(y, 0); with
    /// `pool` (requires `relu`), the max pool of that ReLU'd y is written to `pool.y`/`pool.argmax`,
    /// and y may be nil: each image's convolution output then lives only in a per-thread scratch
    /// (the backward needs just the pooled values and argmax, see `backward`).
    /// `filters`: for a Winograd layer, its forward filters as `transformFilters(w, g, adjoint:
    /// false)` wrote them (then not recomputed; a workspace sized without filters needs them);
    /// nil: transformed here into the workspace. Must be nil for other layers.
    public static func forward(x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>?,
                               y: UnsafeMutablePointer<Float>?, geometry g: Conv2DGeometry,
                               relu: Bool = false, pool: PoolOutput? = nil, filters: UnsafePointer<Float>? = nil,
                               workspace: UnsafeMutablePointer<Float>? = nil, threads: Int = 0) {
        if g.batch == 0 { return }
        precondition(filters == nil || Winograd.applies(g), "Conv2D.forward: filters given for a layer without Winograd")
        precondition(pool == nil || relu, "Conv2D.forward: a fused pool follows a fused ReLU")
        precondition(y != nil || pool != nil, "Conv2D.forward: y may be nil only with a fused pool")
        if let pool {
            precondition(pool.geometry.batch == g.batch && pool.geometry.channels == g.outChannels &&
                         pool.geometry.height == g.outHeight && pool.geometry.width == g.outWidth,
                         "Conv2D.forward: pool geometry does not match the convolution output")
        }
        let threads = threads > 0 ? threads : ParallelFor.computeThreads   // read once: sizes ws
        let K = g.patchSize, P = g.outPlane, O = g.outChannels, C = g.inChannels
        let owned = workspace == nil ? UnsafeMutablePointer<Float>.allocate(capacity: workspaceCount(g, threads: threads)) : nil
        defer { owned?.deallocate() }
        let ws = workspace ?? owned!
        let U = Winograd.applies(g) ? winogradFilters(w, g, ws, adjoint: false, given: filters, threads: threads) : nil
        let direct = DirectConv.applies(g) ? DirectConv.ForwardPlan(w, g, into: sharedWeights(g, ws, threads: threads)) : nil
        ParallelFor.split(count: g.batch, threads: threads) { part, images in
            let sc = PartScratch(ws, part: part, g)
            for n in images {
                // Output of image n: in y, or (fused pool without y) in the part's scratch.
                let yn = y.map { $0 + n * O * P } ?? sc.image
                if let direct {
                    // Bias and ReLU applied as each register tile is stored.
                    DirectConv.forwardImage(x + n * C * g.inPlane, direct, bias: b, relu: relu, g, into: yn,
                                            scratch: sc.direct)
                } else if let U {
                    Winograd.convolveImage(x + n * C * g.inPlane, cin: C, cout: O, height: g.height,
                                           width: g.width, tile: Winograd.tileSize(g)!, kernel: g.kernel, filters: U,
                                           into: yn, scratch: sc.winograd)
                } else {
                    // im2col + GEMM in slabs of output rows (`slabRows`) straight into y[n].
                    padImage(x, g, image: n, into: sc.pad)
                    let rows = slabRows(g), OW = g.outWidth
                    var i0 = 0
                    while i0 < g.outHeight {
                        let r = i0..<min(g.outHeight, i0 + rows), cw = r.count * OW
                        fillColumns(sc.pad, g, rows: r, cols: sc.cols, ld: cw)
                        BLAS.sgemm(m: O, n: cw, k: K, a: w, lda: K, b: sc.cols, ldb: cw, c: yn + i0 * OW, ldc: P)
                        i0 = r.upperBound
                    }
                }
                // Bias (and ReLU) in one pass over the image's output while it is in cache.
                for o in 0..<O where direct == nil {
                    let row = yn + o * P, bo = b?[o] ?? 0
                    if relu {
                        Elementwise.addScalarReLU(row, bo, into: row, count: P)
                    } else if bo != 0 {
                        Elementwise.addScalar(row, bo, into: row, count: P)
                    }
                }
                if let pool {
                    // Image n alone: its O planes read from yn, written at image n of the outputs.
                    let one = pool.geometry.image, OP = one.outHeight * one.outWidth
                    MaxPool2D.forward(x: yn, y: pool.y + n * O * OP, argmax: pool.argmax + n * O * OP,
                                      geometry: one, planes: 0..<O)
                }
            }
        }
    }

    /// Backward pass. Writes ∂x into `dx` (overwritten) when `dx` is non-nil; **accumulates**
    /// ∂w into `dWeight` and ∂b into `dBias` when those are non-nil. With both parameter
    /// buffers nil only the input-gradient path runs (no im2col, no ∂W GEMM).
    /// Buffers: x (N,C,H,W) (needed only for ∂w), w (O,C,k,k), dy (N,O,OH,OW),
    /// dx (N,C,H,W), dWeight (O,C,k,k), dBias (O).
    /// Fused prologue (the adjoint of `forward`'s epilogue): with `relu` = the ReLU'd forward
    /// output y, the convolution's output gradient is dy·[y > 0]; with `pool` as well, `relu` is
    /// the *pooled* output and dy its gradient (N, O, OPH, OPW): each dy value goes to its argmax
    /// position when the pooled value (= y there) is > 0. Either way the full-size output
    /// gradient is never materialised (one image's worth per thread).
    /// `filters`: for a Winograd layer, its input-gradient filters as `transformFilters(w, g,
    /// adjoint: true)` wrote them (see `forward`); nil: transformed here when dx is asked for.
    public static func backward(x: UnsafePointer<Float>?, weight w: UnsafePointer<Float>,
                                dy: UnsafePointer<Float>, geometry g: Conv2DGeometry,
                                dx: UnsafeMutablePointer<Float>?,
                                dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
                                relu: UnsafePointer<Float>? = nil, pool: PoolGradient? = nil,
                                filters: UnsafePointer<Float>? = nil,
                                workspace: UnsafeMutablePointer<Float>? = nil, threads: Int = 0) {
        if g.batch == 0 { return }
        precondition(filters == nil || Winograd.applies(g), "Conv2D.backward: filters given for a layer without Winograd")
        precondition(dWeight == nil || x != nil, "Conv2D.backward: ∂weight needs the input x")
        precondition(pool == nil || relu != nil, "Conv2D.backward: a fused pool needs the ReLU output")
        let threads = threads > 0 ? threads : ParallelFor.computeThreads   // read once: sizes ws
        let K = g.patchSize, P = g.outPlane, O = g.outChannels, C = g.inChannels
        let owned = workspace == nil ? UnsafeMutablePointer<Float>.allocate(capacity: workspaceCount(g, threads: threads)) : nil
        defer { owned?.deallocate() }
        let ws = workspace ?? owned!
        let U = dx != nil && Winograd.applies(g) ? winogradFilters(w, g, ws, adjoint: true, given: filters, threads: threads) : nil
        let direct = dx != nil && DirectConv.applies(g)
            ? DirectConv.GradientPlan(w, g, into: sharedWeights(g, ws, threads: threads)) : nil
        ParallelFor.split(count: g.batch, threads: threads) { part, images in
            let sc = PartScratch(ws, part: part, g)
            let cols = sc.cols, pad = sc.pad, delta = sc.image, pw = sc.dWeight, pb = sc.dBias
            if dWeight != nil { pw.update(repeating: 0, count: O * K) }
            if dBias != nil { pb.update(repeating: 0, count: O) }
            for n in images {
                // δ[n] (O, P): the convolution's output gradient of image n.
                let d: UnsafePointer<Float>
                if let relu {
                    if let pool {
                        let pg = pool.geometry, OP = pg.outHeight * pg.outWidth
                        delta.update(repeating: 0, count: O * P)
                        for o in 0..<O {
                            let plane = n * O + o
                            let gy = dy + plane * OP, idx = pool.argmax + plane * OP
                            let dp = delta + o * P, pooled = relu + plane * OP
                            for t in 0..<OP {
                                // pooled[t] = y at the argmax: the ReLU mask there (NaN passes,
                                // as in reluBackward).
                                dp[Int(idx[t])] += pooled[t] <= 0 ? 0 : gy[t]
                            }
                        }
                    } else {
                        Elementwise.reluBackward(output: relu + n * O * P, dy + n * O * P, into: delta, count: O * P)
                    }
                    d = UnsafePointer(delta)
                } else {
                    d = dy + n * O * P
                }
                if let dx, let direct {
                    DirectConv.gradientImage(d, direct, g, into: dx + n * C * g.inPlane, scratch: sc.direct)
                } else if let dx, let U {
                    // ∂x[n] = conv(δ[n], rot180(w)ᵀ, padding 1) by Winograd (see `Winograd`).
                    Winograd.convolveImage(d, cin: O, cout: C, height: g.height, width: g.width,
                                           tile: Winograd.tileSize(g)!, kernel: g.kernel, filters: U,
                                           into: dx + n * C * g.inPlane, scratch: sc.winograd)
                } else if let dx {
                    // ∂cols (K, P) = Wᵀ (K, O) · δ[n] (O, P)
                    BLAS.sgemm(transA: true, m: K, n: P, k: O, a: w, lda: K, b: d, ldb: P, c: cols, ldc: P)
                    col2im(cols, g, first: n, count: 1, into: dx, overwrite: true, scratch: pad)
                }
                if dWeight != nil, let x {
                    im2col(x, g, first: n, count: 1, cols: cols, scratch: pad)
                    // ∂W_part (O, K) += δ[n] (O, P) · colsᵀ (P, K)
                    BLAS.sgemm(transB: true, m: O, n: K, k: P, a: d, lda: P, b: cols, ldb: P,
                               beta: 1, c: pw, ldc: K)
                }
                if dBias != nil {
                    for o in 0..<O { pb[o] += Elementwise.sum(d + o * P, count: P) }
                }
            }
        }
        // Partial sums added in part order (deterministic for a fixed thread count).
        for part in 0..<ParallelFor.parts(count: g.batch, threads: threads) {
            let sc = PartScratch(ws, part: part, g)
            if let dWeight { Elementwise.add(sc.dWeight, into: dWeight, count: O * K) }
            if let dBias { Elementwise.add(sc.dBias, into: dBias, count: O) }
        }
    }
}
