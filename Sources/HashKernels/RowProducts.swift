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
/// Orders (every product rounded, then added: no fused multiply-add, so the order is also the same
/// on every x86 build, baseline or AVX2/AVX-512):
/// - `dots`: y[i, o] = Σ_k x[i, k]·w[o, k]. Eight partial sums, lane l over k ≡ l (mod 8) for the
///   k < 8⌊K/8⌋ in increasing order; the tail k ≥ 8⌊K/8⌋ summed in increasing order; then
///   ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), plus the tail, plus the bias.
/// - `combinations`: dx[i, j] = Σ_o d[i, o]·w[o, j], summed over o in increasing order.
///
/// Speed: register tiles of 4 rows × 2 weight rows (`dots`) and 4 rows × 16 columns
/// (`combinations`), with the weight rows of a block kept in cache across the row tiles.
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

    /// One value: dot(a, b) over `k` floats, in the fixed order.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ k: Int) -> Float {
        let k8 = k & ~7
        var acc = V(repeating: 0)
        var t = 0
        while t < k8 { acc = acc + load(a + t) * load(b + t); t += 8 }
        var tail: Float = 0
        while t < k { tail = tail + a[t] * b[t]; t += 1 }
        return reduce(acc) + tail
    }

    /// Weight rows per cache block of `dots`: their `k` floats each stay in L2 while every row
    /// tile of x passes over them (8 rows of 9216 floats: 288 KiB).
    static let dotBlock = 8

    /// y[i·ldy + o] = Σ_k x[i·k + t]·w[o·k + t] (+ bias[o]) for i < n and o in `outputs`; x is
    /// (n × k) and w (· × k), both row-major. Each value in the fixed order of the type's
    /// documentation, independent of n, of i and of `outputs`.
    public static func dots(x: UnsafePointer<Float>, rows n: Int, w: UnsafePointer<Float>, outputs: Range<Int>, k: Int,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, ldy: Int) {
        let k8 = k & ~7
        var ob = outputs.lowerBound
        while ob < outputs.upperBound {
            let oe = min(outputs.upperBound, ob + dotBlock)
            var i = 0
            while i + 4 <= n {
                let x0 = x + i * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k
                var o = ob
                while o + 2 <= oe {
                    let w0 = w + o * k, w1 = w0 + k
                    var a00 = V(repeating: 0), a01 = a00, a10 = a00, a11 = a00
                    var a20 = a00, a21 = a00, a30 = a00, a31 = a00
                    var t = 0
                    while t < k8 {
                        let v0 = load(w0 + t), v1 = load(w1 + t)
                        let u0 = load(x0 + t), u1 = load(x1 + t), u2 = load(x2 + t), u3 = load(x3 + t)
                        a00 = a00 + u0 * v0; a01 = a01 + u0 * v1
                        a10 = a10 + u1 * v0; a11 = a11 + u1 * v1
                        a20 = a20 + u2 * v0; a21 = a21 + u2 * v1
                        a30 = a30 + u3 * v0; a31 = a31 + u3 * v1
                        t += 8
                    }
                    let acc = [a00, a01, a10, a11, a20, a21, a30, a31]
                    for r in 0..<4 {
                        let xr = x0 + r * k
                        for c in 0..<2 {
                            var tail: Float = 0
                            var u = k8
                            while u < k { tail = tail + xr[u] * w[(o + c) * k + u]; u += 1 }
                            let b = bias.map { $0[o + c] } ?? 0
                            y[(i + r) * ldy + o + c] = (reduce(acc[2 * r + c]) + tail) + b
                        }
                    }
                    o += 2
                }
                while o < oe {
                    for r in 0..<4 {
                        y[(i + r) * ldy + o] = dot(x + (i + r) * k, w + o * k, k) + (bias.map { $0[o] } ?? 0)
                    }
                    o += 1
                }
                i += 4
            }
            while i < n {
                for o in ob..<oe { y[i * ldy + o] = dot(x + i * k, w + o * k, k) + (bias.map { $0[o] } ?? 0) }
                i += 1
            }
            ob = oe
        }
    }

    /// Rows of w per pass of `combinations`: the partial sums of a tile are stored into dx and
    /// reloaded between passes (which keeps the order), so a pass touches only `combineBlock`
    /// rows of w, each a page apart for a wide layer (few TLB misses). Each 16-column strip of
    /// a pass's rows is first copied into a contiguous 4 KiB buffer that the row tiles then read:
    /// the rows of a wide layer lie a multiple of 4 KiB apart (4096 or 9216 floats), so read in
    /// place they all fall into one L1 set and were evicted between row tiles (the input gradient
    /// of cnn-small's and alexnet's first linear layers ran at 40–60 % of the forward's speed,
    /// measured on Zen 4).
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
        withUnsafeTemporaryAllocation(of: Float.self, capacity: combineBlock * 16) { buffer in
            let strip = buffer.baseAddress!
            var ob = 0
            while ob < m {
                let oe = min(m, ob + combineBlock), first = ob == 0
                var j = columns.lowerBound
                while j + 16 <= columns.upperBound {
                    // Rows ob ..< oe of the strip's 16 columns, contiguous (see `combineBlock`).
                    for o in ob..<oe {
                        let src = w + o * ldw + j, dst = strip + (o - ob) * 16
                        store(load(src), dst); store(load(src + 8), dst + 8)
                    }
                    var i = 0
                    while i + 4 <= n {
                        let d0 = d + i * m, d1 = d0 + m, d2 = d1 + m, d3 = d2 + m
                        let out = dx + i * ldx + j
                        let zero = V(repeating: 0)
                        var a00 = first ? zero : load(out), a01 = first ? zero : load(out + 8)
                        var a10 = first ? zero : load(out + ldx), a11 = first ? zero : load(out + ldx + 8)
                        var a20 = first ? zero : load(out + 2 * ldx), a21 = first ? zero : load(out + 2 * ldx + 8)
                        var a30 = first ? zero : load(out + 3 * ldx), a31 = first ? zero : load(out + 3 * ldx + 8)
                        var wp = UnsafePointer(strip)
                        for o in ob..<oe {
                            let v0 = load(wp), v1 = load(wp + 8)
                            let s0 = V(repeating: d0[o]), s1 = V(repeating: d1[o])
                            let s2 = V(repeating: d2[o]), s3 = V(repeating: d3[o])
                            a00 = a00 + s0 * v0; a01 = a01 + s0 * v1
                            a10 = a10 + s1 * v0; a11 = a11 + s1 * v1
                            a20 = a20 + s2 * v0; a21 = a21 + s2 * v1
                            a30 = a30 + s3 * v0; a31 = a31 + s3 * v1
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
                        var wp = UnsafePointer(strip)
                        for o in ob..<oe {
                            let s = V(repeating: di[o])
                            a0 = a0 + s * load(wp); a1 = a1 + s * load(wp + 8)
                            wp += 16
                        }
                        store(a0, out); store(a1, out + 8)
                        i += 1
                    }
                    j += 16
                }
                // Columns left over at the end of the range: the same sums, one value at a time.
                while j < columns.upperBound {
                    for i in 0..<n {
                        var acc: Float = first ? 0 : dx[i * ldx + j]
                        for o in ob..<oe { acc = acc + d[i * m + o] * w[o * ldw + j] }
                        dx[i * ldx + j] = acc
                    }
                    j += 1
                }
                ob = oe
            }
        }
    }
}
