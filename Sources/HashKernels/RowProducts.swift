/// Dense products of linear layers whose every value has one fixed summation order, whatever the
/// number of rows computed together and the row's position among them.
///
/// A linear layer's output and input gradient for one image then do not depend on which other
/// images share the call: an attack gives bitwise the same adversarial image for a query whether
/// it is attacked alone, in a chunk, or in a shard on another process. OpenBLAS's sgemm cannot
/// promise that: its micro-kernels sum a value in an order that depends on the call's shape and
/// on the value's column inside a tile (measured on an AVX2 machine: in a 32-column call, columns
/// 8–23 differed in their last bits from the same image computed alone; columns 0–7 and 24–31 did
/// not).
///
/// Orders (each step one `MultiplyAdd.madd`: fused in the FMA builds, a product then a sum on
/// baseline x86-64, so a value's bits may differ between those two builds, as the convolutions'
/// do; within one build they depend on nothing else):
/// - `dots`: y[i, o] = Σ_k x[i, k]·w[o, k]. Eight partial sums, lane l over k ≡ l (mod 8) for the
///   k < 8⌊K/8⌋ in increasing order; the tail k ≥ 8⌊K/8⌋ summed in increasing order; then
///   ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), plus the tail, plus the bias.
/// - `combinations`: dx[i, j] = Σ_o d[i, o]·w[o, j], summed over o in increasing order.
///
/// Speed: register tiles of 4 rows × 2 weight rows (`dots`) and 4 rows × 16 columns
/// (`combinations`), over copies of x's chunks (`dots`) and of w's strips (`combinations`) laid
/// out contiguously so that neither is read from rows 4 KiB multiples apart.
public enum RowProducts {
    public typealias V = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// The fixed reduction of the eight lanes (see the type's documentation).
    @inline(__always)
    static func reduce(_ v: V) -> Float {
        let h = v.lowHalf + v.highHalf            // (l0+l4, l1+l5, l2+l6, l3+l7)
        return (h[0] + h[2]) + (h[1] + h[3])
    }

    /// Blocking of `dots`: x rows are taken `dotRows` at a time and copied chunk-major (each
    /// `dotChunk`-float piece of the rows contiguous, so a tile's four rows do not sit 4 KiB
    /// multiples apart in one L1 set as a wide layer's rows do); the partial sums of
    /// `dotRows` × `dotOutputs` values are kept as vectors in a small buffer while the chunks
    /// pass, so each piece of x is read from L1 by every weight row of the block. The vector
    /// partial sums go on from chunk to chunk, so the order is that of the type's documentation
    /// whatever the blocking. Measured on 2 Zen 4 cores, batch 16: alexnet's fc6 forward went from
    /// 16.5–18.4 ms to 12–13.7 ms together with the fused multiply-add.
    static let dotChunk = 128
    static let dotRows = 16
    static let dotOutputs = 16

    /// y[i·ldy + o] = Σ_k x[i·k + t]·w[o·k + t] (+ bias[o]) for i < n and o in `outputs`; x is
    /// (n × k) and w (· × k), both row-major. Each value in the fixed order of the type's
    /// documentation, independent of n, of i and of `outputs`.
    public static func dots(x: UnsafePointer<Float>, rows n: Int, w: UnsafePointer<Float>, outputs: Range<Int>, k: Int,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int) {
        if n == 0 || outputs.isEmpty { return }
        let k8 = k & ~7, C = dotChunk, R = dotRows, OB = dotOutputs
        let chunks = (k8 + C - 1) / C
        // x's rows of one row block, chunk-major: chunk c of row r at c·R·C + r·(chunk width).
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: max(1, R * chunks * C))
        defer { packed.deallocate() }
        withUnsafeTemporaryAllocation(of: V.self, capacity: R * OB) { sums in
            let acc = sums.baseAddress!
            var rb = 0
            while rb < n {
                let nr = min(R, n - rb)
                for c in 0..<chunks {
                    let k0 = c * C, kc = min(C, k8 - k0)
                    for r in 0..<nr {
                        let src = x + (rb + r) * k + k0, dst = packed + c * R * C + r * kc
                        var t = 0
                        while t < kc { store(load(src + t), dst + t); t += 8 }
                    }
                }
                var ob = outputs.lowerBound
                while ob < outputs.upperBound {
                    let no = min(OB, outputs.upperBound - ob)
                    for v in 0..<(nr * no) { acc[v] = V(repeating: 0) }
                    for c in 0..<chunks {
                        let k0 = c * C, kc = min(C, k8 - k0)
                        dotChunkPass(UnsafePointer(packed + c * R * C), rows: nr, width: kc,
                                     w: w + ob * k + k0, ldw: k, outputs: no, acc: acc)
                    }
                    // The tails (k ≥ k8, in increasing order) and the fixed lane reduction.
                    for r in 0..<nr {
                        let xr = x + (rb + r) * k
                        for o in 0..<no {
                            let wr = w + (ob + o) * k
                            var tail: Float = 0
                            var t = k8
                            while t < k { tail = MultiplyAdd.madd(tail, xr[t], wr[t]); t += 1 }
                            y[(rb + r) * ldy + ob + o] = (reduce(acc[r * no + o]) + tail) + (bias?[ob + o] ?? 0)
                        }
                    }
                    ob += no
                }
                rb += nr
            }
        }
    }

    /// One chunk of `dots`: acc[r·outputs + o] += x chunk row r ⊙ w row o, lane by lane, for the
    /// `rows` packed rows (each `width` floats, a multiple of 8) and `outputs` weight rows.
    /// Register tiles of 4 rows × 2 weight rows; each weight pair's piece stays in L1 across the
    /// row tiles.
    @inline(__always)
    static func dotChunkPass(_ xc: UnsafePointer<Float>, rows nr: Int, width kc: Int, w: UnsafePointer<Float>, ldw k: Int,
                             outputs no: Int, acc: UnsafeMutablePointer<V>) {
        var o = 0
        while o < no {
            let pair = o + 1 < no, w0 = w + o * k, w1 = pair ? w0 + k : w0
            var i = 0
            while i + 4 <= nr {
                let x0 = xc + i * kc, x1 = x0 + kc, x2 = x1 + kc, x3 = x2 + kc
                let ap = acc + i * no + o
                var a00 = ap[0], a10 = ap[no], a20 = ap[2 * no], a30 = ap[3 * no]
                var a01 = pair ? ap[1] : V(), a11 = pair ? ap[no + 1] : V()
                var a21 = pair ? ap[2 * no + 1] : V(), a31 = pair ? ap[3 * no + 1] : V()
                var t = 0
                while t < kc {
                    let v0 = load(w0 + t), v1 = load(w1 + t)
                    let u0 = load(x0 + t), u1 = load(x1 + t), u2 = load(x2 + t), u3 = load(x3 + t)
                    a00 = MultiplyAdd.madd(a00, u0, v0); a01 = MultiplyAdd.madd(a01, u0, v1)
                    a10 = MultiplyAdd.madd(a10, u1, v0); a11 = MultiplyAdd.madd(a11, u1, v1)
                    a20 = MultiplyAdd.madd(a20, u2, v0); a21 = MultiplyAdd.madd(a21, u2, v1)
                    a30 = MultiplyAdd.madd(a30, u3, v0); a31 = MultiplyAdd.madd(a31, u3, v1)
                    t += 8
                }
                ap[0] = a00; ap[no] = a10; ap[2 * no] = a20; ap[3 * no] = a30
                if pair { ap[1] = a01; ap[no + 1] = a11; ap[2 * no + 1] = a21; ap[3 * no + 1] = a31 }
                i += 4
            }
            while i < nr {
                let xi = xc + i * kc, ap = acc + i * no + o
                var a0 = ap[0], a1 = pair ? ap[1] : V()
                var t = 0
                while t < kc {
                    let u = load(xi + t)
                    a0 = MultiplyAdd.madd(a0, u, load(w0 + t)); a1 = MultiplyAdd.madd(a1, u, load(w1 + t))
                    t += 8
                }
                ap[0] = a0
                if pair { ap[1] = a1 }
                i += 1
            }
            o += pair ? 2 : 1
        }
    }

    /// Rows of w per pass of `combinations`: the partial sums of a tile are stored into dx and
    /// reloaded between passes (which keeps the order). A pass first copies its rows' part of
    /// every full 16-column strip into a buffer, each row read as one contiguous run (a wide
    /// layer's rows lie 4 KiB multiples apart: read strip by strip in place they all fell into
    /// one L1 set, and 64-byte pieces of 64 rows defeated the hardware prefetch); a strip's
    /// `combineBlock` × 16 floats are then contiguous for the row tiles. Strips lie
    /// `combineBlock`·16 + 16 floats apart, off the 4 KiB period. Measured on 2 Zen 4 cores, batch
    /// 16: alexnet's fc6 input gradient went from 24–30 ms to 19–26 ms together with the fused
    /// multiply-add.
    static let combineBlock = 64

    /// dx[i·ldx + j] = Σ_o d[i·m + o]·w[o·ldw + j] for i < n and j in `columns`; d is (n × m),
    /// w (m × ·) with leading dimension `ldw`. Each value summed over o in increasing order,
    /// independent of n, of i and of `columns`.
    public static func combinations(d: UnsafePointer<Float>, rows n: Int, m: Int, w: UnsafePointer<Float>, ldw: Int,
                                    columns: Range<Int>, dx: UnsafeMutablePointer<Float>, ldx: Int) {
        if m == 0 {
            for i in 0..<n { for j in columns { dx[i * ldx + j] = 0 } }
            return
        }
        let strips = columns.count / 16, stripStride = combineBlock * 16 + 16
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(1, strips * stripStride))
        defer { buffer.deallocate() }
        var ob = 0
        while ob < m {
            let oe = min(m, ob + combineBlock), first = ob == 0
            // Rows ob ..< oe of every full strip, strip-major (see `combineBlock`).
            for o in ob..<oe {
                var src = w + o * ldw + columns.lowerBound, dst = buffer + (o - ob) * 16
                for _ in 0..<strips {
                    store(load(src), dst); store(load(src + 8), dst + 8)
                    src += 16; dst += stripStride
                }
            }
            for s in 0..<strips {
                let j = columns.lowerBound + 16 * s
                let strip = UnsafePointer(buffer + s * stripStride)
                var i = 0
                while i + 4 <= n {
                    let d0 = d + i * m, d1 = d0 + m, d2 = d1 + m, d3 = d2 + m
                    let out = dx + i * ldx + j
                    let zero = V(repeating: 0)
                    var a00 = first ? zero : load(out), a01 = first ? zero : load(out + 8)
                    var a10 = first ? zero : load(out + ldx), a11 = first ? zero : load(out + ldx + 8)
                    var a20 = first ? zero : load(out + 2 * ldx), a21 = first ? zero : load(out + 2 * ldx + 8)
                    var a30 = first ? zero : load(out + 3 * ldx), a31 = first ? zero : load(out + 3 * ldx + 8)
                    var wp = strip
                    for o in ob..<oe {
                        let v0 = load(wp), v1 = load(wp + 8)
                        let s0 = V(repeating: d0[o]), s1 = V(repeating: d1[o])
                        let s2 = V(repeating: d2[o]), s3 = V(repeating: d3[o])
                        a00 = MultiplyAdd.madd(a00, s0, v0); a01 = MultiplyAdd.madd(a01, s0, v1)
                        a10 = MultiplyAdd.madd(a10, s1, v0); a11 = MultiplyAdd.madd(a11, s1, v1)
                        a20 = MultiplyAdd.madd(a20, s2, v0); a21 = MultiplyAdd.madd(a21, s2, v1)
                        a30 = MultiplyAdd.madd(a30, s3, v0); a31 = MultiplyAdd.madd(a31, s3, v1)
                        wp += 16
                    }
                    store(a00, out); store(a01, out + 8)
                    store(a10, out + ldx); store(a11, out + ldx + 8)
                    store(a20, out + 2 * ldx); store(a21, out + 2 * ldx + 8)
                    store(a30, out + 3 * ldx); store(a31, out + 3 * ldx + 8)
                    i += 4
                }
                while i < n {
                    let di = d + i * m, out = dx + i * ldx + j
                    var a0 = first ? V(repeating: 0) : load(out), a1 = first ? V(repeating: 0) : load(out + 8)
                    var wp = strip
                    for o in ob..<oe {
                        let s = V(repeating: di[o])
                        a0 = MultiplyAdd.madd(a0, s, load(wp)); a1 = MultiplyAdd.madd(a1, s, load(wp + 8))
                        wp += 16
                    }
                    store(a0, out); store(a1, out + 8)
                    i += 1
                }
            }
            // Columns left over at the end of the range: the same sums, one value at a time.
            var j = columns.lowerBound + 16 * strips
            while j < columns.upperBound {
                for i in 0..<n {
                    var acc: Float = first ? 0 : dx[i * ldx + j]
                    for o in ob..<oe { acc = MultiplyAdd.madd(acc, d[i * m + o], w[o * ldw + j]) }
                    dx[i * ldx + j] = acc
                }
                j += 1
            }
            ob = oe
        }
    }
}
