// Rounding-error bounds that the test suites derive their tolerances from.
//
// Why: float32 results of the kernels differ in their last bits between CPUs (OpenBLAS picks its
// micro-kernels per CPU, so the summation order inside a dot product changes), between SIMD
// widths and between thread counts of routines that promise no more. A test that compares a
// float32 result with a float64 reference therefore needs a tolerance that holds for *every*
// summation order: the a-priori bounds of Higham, "Accuracy and Stability of Numerical
// Algorithms" (2nd ed., 2002), §3.1, in the standard model fl(a ∘ b) = (a ∘ b)(1 + δ), |δ| ≤ u:
//
//   |fl(Σ_{i≤n} a_i·b_i) − Σ a_i·b_i| ≤ γ_n · Σ |a_i·b_i|,   γ_n = n·u / (1 − n·u),
//
// for any order of the additions (any blocking, any tree, with or without fused multiply-adds).
// Tests compute the magnitude Σ|a_i·b_i| next to their float64 reference and assert
// |actual − reference| ≤ γ_n · magnitude (times `slack`, see `assertWithinBounds`).
import XCTest

public enum Rounding {
    /// Unit roundoff of IEEE binary32 with round-to-nearest: 2⁻²⁴.
    public static let float32 = 0x1p-24
    /// Unit roundoff of IEEE binary64 with round-to-nearest: 2⁻⁵³.
    public static let float64 = 0x1p-53
}

/// γ_n = n·u/(1 − n·u) (Higham, Lemma 3.1): the relative error bound of n chained roundings.
public func gamma(_ n: Int, u: Double = Rounding.float32) -> Double {
    let nu = Double(max(n, 0)) * u
    precondition(nu < 0.5, "gamma: n·u = \(nu) is too large for a first-order bound")
    return nu / (1 - nu)
}

/// The factor every bound is multiplied by before it is compared: 1 + 1e-3. It covers what the
/// first-order bounds drop, all far below 1e-3 of the bound: products of two error terms
/// (γ_n² ≲ 1e-6 relative) and the float64 reference's own rounding (≤ γ_n at u = 2⁻⁵³, i.e.
/// 2⁻²⁹ of the float32 bound).
public let boundSlack = 1.001

/// Worst case of a bounded comparison: the largest |actual − reference| / bound and where.
public struct BoundReport: CustomStringConvertible {
    public var count = 0
    public var worstRatio = 0.0
    public var worstIndex = -1
    public var failures = 0
    public var description: String {
        "\(count) values, worst |error|/bound \(String(format: "%.3g", worstRatio)) at \(worstIndex), \(failures) over"
    }
}

/// Asserts |actual_i − reference_i| ≤ bound_i · `boundSlack` for every i (NaN fails). At most
/// five failures are reported one by one, then a count. Returns the worst ratio, so a caller can
/// also check that a bound is not vacuous.
@discardableResult
public func assertWithinBounds(_ actual: [Float], _ reference: [Double], _ bound: [Double], _ label: String,
                               file: StaticString = #filePath, line: UInt = #line) -> BoundReport {
    var r = BoundReport()
    XCTAssertEqual(actual.count, reference.count, "\(label): count", file: file, line: line)
    XCTAssertEqual(bound.count, reference.count, "\(label): bound count", file: file, line: line)
    let n = min(actual.count, reference.count, bound.count)
    r.count = n
    for i in 0..<n {
        let err = abs(Double(actual[i]) - reference[i])
        let allowed = bound[i] * boundSlack
        let ratio: Double = err == 0 ? 0 : (err.isNaN ? .infinity : (allowed > 0 ? err / allowed : .infinity))
        if r.worstIndex < 0 || ratio > r.worstRatio { r.worstRatio = ratio; r.worstIndex = i }
        if !(err <= allowed) {
            r.failures += 1
            if r.failures <= 5 {
                XCTFail("\(label)[\(i)]: \(actual[i]) vs reference \(reference[i]): |error| \(err) > bound \(allowed)",
                        file: file, line: line)
            }
        }
    }
    if r.failures > 5 { XCTFail("\(label): \(r.failures) of \(n) values outside their bounds", file: file, line: line) }
    return r
}

/// Float64 dot-product accumulator that also keeps the magnitude Σ|a·b| for `gamma`.
public struct BoundedSum {
    public var value = 0.0
    public var magnitude = 0.0
    public init(_ start: Double = 0) { value = start; magnitude = abs(start) }
    @inline(__always) public mutating func add(_ a: Double, _ b: Double) {
        let p = a * b
        value += p
        magnitude += abs(p)
    }
    @inline(__always) public mutating func add(_ a: Double) {
        value += a
        magnitude += abs(a)
    }
    /// The bound γ_n · Σ|terms| of a float32 evaluation of this sum with `terms` terms.
    public func bound(terms: Int) -> Double { gamma(terms) * magnitude }
}

// MARK: Winograd F(2×2, 3×3) and F(4×4, 3×3)

/// Roundings a Winograd F(m×m, 3×3) output undergoes besides the channel sum of C terms (the
/// kernel's bound is γ_{C + this (+ 1 with a bias)} times `winogradMagnitude`; each chain of
/// roundings ends in one of its terms):
/// - m = 2: 2 in the input transform Bᵀ·d·B, 4 in the filter transform G·f·Gᵀ (×½ is exact), 1 in
///   the product and 4 in the output transform Aᵀ·m·A: 11;
/// - m = 4: 4 in the input transform (two depth-2 passes), 6 in the filter transform (two depth-2
///   passes of the integer rows Ĝ, the float32 scale s_a·s_b and its product), 1 in the product
///   and 6 in the output transform (two depth-3 passes): 17;
/// - F(2×2, 5×5): 4 in the input transform, 8 in the filter transform (two depth-3 passes, the
///   scale and its product), 1 in the product and 6 in the output transform: 19.
public func winogradExtraRoundings(tile m: Int, kernel r: Int) -> Int {
    switch (m, r) {
    case (2, 3): return 11
    case (4, 3): return 17
    case (2, 5): return 19
    default: preconditionFailure("winogradExtraRoundings: F(\(m), \(r))")
    }
}

/// |Bᵀ|, |G|, |Aᵀ| of F(m×m, r×r) for (m, r) = (2, 3), (4, 3), (2, 5) (the matrices of
/// HashKernels' `Winograd`).
private func winogradAbsMatrices(_ m: Int, _ r: Int) -> (BT: [[Double]], G: [[Double]], AT: [[Double]]) {
    if r == 5 {
        precondition(m == 2, "winogradMagnitude: F(\(m), 5)")
        let s = [1.0 / 4, 1.0 / 6, 1.0 / 6, 1.0 / 24, 1.0 / 24, 1]
        let gHat: [[Double]] = [[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 2, 4, 8, 16], [1, 2, 4, 8, 16],
                                [0, 0, 0, 0, 1]]
        return ([[4, 0, 5, 0, 1, 0], [0, 4, 4, 1, 1, 0], [0, 4, 4, 1, 1, 0], [0, 2, 1, 2, 1, 0], [0, 2, 1, 2, 1, 0],
                 [0, 4, 0, 5, 0, 1]],
                (0..<6).map { a in gHat[a].map { s[a] * $0 } },
                [[1, 1, 1, 1, 1, 0], [0, 1, 1, 2, 2, 1]])
    }
    precondition(r == 3, "winogradMagnitude: kernel \(r) (3 or 5)")
    if m == 2 {
        return ([[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]],
                [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0, 0, 1]],
                [[1, 1, 1, 0], [0, 1, 1, 1]])
    }
    precondition(m == 4, "winogradMagnitude: tile \(m) (2 or 4)")
    return ([[4, 0, 5, 0, 1, 0], [0, 4, 4, 1, 1, 0], [0, 4, 4, 1, 1, 0], [0, 2, 1, 2, 1, 0], [0, 2, 1, 2, 1, 0],
             [0, 4, 0, 5, 0, 1]],
            [[1.0 / 4, 0, 0], [1.0 / 6, 1.0 / 6, 1.0 / 6], [1.0 / 6, 1.0 / 6, 1.0 / 6],
             [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, 1.0 / 12, 1.0 / 6], [0, 0, 1]],
            [[1, 1, 1, 1, 1, 0], [0, 1, 1, 2, 2, 0], [0, 1, 1, 4, 4, 0], [0, 1, 1, 8, 8, 1]])
}

/// The rounding magnitude of a Winograd F(m×m, r×r), padding-(r − 1)/2 convolution (HashKernels'
/// `Winograd`, m = `tile`, r = `kernel`): for every output (n, o, i, j),
/// |Aᵀ|·[Σ_c (|G|·|f_oc|·|Gᵀ|) ⊙ (|Bᵀ|·|d_c|·|B|)]·|A| at the output's place in its m×m tile, d_c the
/// zero-padded α×α input patch under the tile (α = m + r − 1). `input` (N, C, H, W) and `weight`
/// are taken in absolute value. Forward: `weight` is (O, C, r, r) and f_oc = w[o, c]. `adjoint`,
/// the input gradient of a layer with weight (L_out, L_in, r, r), a convolution from its L_out
/// output channels to its L_in inputs: pass that weight with inChannels = L_out and outChannels =
/// L_in; then f_oc = rot180(w[c, o]).
public func winogradMagnitude(input: [Double], weight: [Double], batch N: Int, inChannels C: Int, outChannels O: Int,
                              height H: Int, width W: Int, adjoint: Bool, tile m: Int, kernel r: Int) -> [Double] {
    let rr = r * r, pad = (r - 1) / 2
    precondition(input.count == N * C * H * W && weight.count == O * C * rr, "winogradMagnitude: sizes")
    let (BT, G, AT) = winogradAbsMatrices(m, r)
    let a = m + r - 1, aa = a * a
    // |U|[o][c] (a×a) = |G|·|f|·|Gᵀ|.
    var U = [Double](repeating: 0, count: O * C * aa)
    for o in 0..<O { for c in 0..<C {
        var f = [Double](repeating: 0, count: rr)
        for t in 0..<rr { f[t] = abs(adjoint ? weight[(c * O + o) * rr + rr - 1 - t] : weight[(o * C + c) * rr + t]) }
        for p in 0..<a { for q in 0..<a {
            var s = 0.0
            for u in 0..<r { for v in 0..<r { s += G[p][u] * f[u * r + v] * G[q][v] } }
            U[(o * C + c) * aa + p * a + q] = s
        } }
    } }
    let TH = (H + m - 1) / m, TW = (W + m - 1) / m
    var out = [Double](repeating: 0, count: N * O * H * W)
    var V = [Double](repeating: 0, count: C * aa), d = [Double](repeating: 0, count: aa)
    var rowPass = [Double](repeating: 0, count: aa), acc = [Double](repeating: 0, count: aa)
    for n in 0..<N { for ti in 0..<TH { for tj in 0..<TW {
        // |V|[c] = |Bᵀ|·|d|·|B| of the patch at rows m·ti − pad …, columns m·tj − pad ….
        for c in 0..<C {
            for y in 0..<a { for q in 0..<a {
                let h = m * ti - pad + y, w = m * tj - pad + q
                d[y * a + q] = h >= 0 && h < H && w >= 0 && w < W ? abs(input[((n * C + c) * H + h) * W + w]) : 0
            } }
            for y in 0..<a { for q in 0..<a {   // rowPass = |d|·|B|
                var s = 0.0
                for t in 0..<a { s += d[y * a + t] * BT[q][t] }
                rowPass[y * a + q] = s
            } }
            for p in 0..<a { for q in 0..<a {
                var s = 0.0
                for y in 0..<a { s += BT[p][y] * rowPass[y * a + q] }
                V[c * aa + p * a + q] = s
            } }
        }
        for o in 0..<O {
            for x in 0..<aa { acc[x] = 0 }
            for c in 0..<C { for x in 0..<aa { acc[x] += U[(o * C + c) * aa + x] * V[c * aa + x] } }
            for i in 0..<m { for j in 0..<m {
                let h = m * ti + i, w = m * tj + j
                if h >= H || w >= W { continue }
                var s = 0.0
                for p in 0..<a { for q in 0..<a { s += AT[i][p] * acc[p * a + q] * AT[j][q] } }
                out[((n * O + o) * H + h) * W + w] = s
            } }
        }
    } } }
    return out
}

/// Float32 bounds of a Winograd F(m×m, r×r), padding-(r − 1)/2 layer (m = `tile`, r = `kernel`;
/// exact float32 inputs): the forward output's γ_{C+e+1}·(|b| + magnitude) (bias added once more)
/// and the input gradient's γ_{O+e}·magnitude of the adjoint convolution of `dy`, e =
/// `winogradExtraRoundings`. x (N, C, H, W), w (O, C, r, r), b (O), dy (N, O, H, W).
public func winogradConvBounds(x: [Float], w: [Float], b: [Float], dy: [Float]?, batch N: Int,
                               inChannels C: Int, outChannels O: Int, height H: Int, width W: Int, tile: Int,
                               kernel: Int)
    -> (y: [Double], dx: [Double]?) {
    let plane = H * W, e = winogradExtraRoundings(tile: tile, kernel: kernel)
    let mag = winogradMagnitude(input: x.map(Double.init), weight: w.map(Double.init), batch: N,
                                inChannels: C, outChannels: O, height: H, width: W, adjoint: false, tile: tile,
                                kernel: kernel)
    let gy = gamma(C + e + 1)
    let yb = mag.indices.map { gy * (abs(Double(b[$0 / plane % O])) + mag[$0]) }
    guard let dy else { return (yb, nil) }
    let gx = gamma(O + e)
    let dmag = winogradMagnitude(input: dy.map(Double.init), weight: w.map(Double.init), batch: N,
                                 inChannels: O, outChannels: C, height: H, width: W, adjoint: true, tile: tile,
                                 kernel: kernel)
    return (yb, dmag.map { gx * $0 })
}

/// Bitwise equality of two float sequences, reported compactly: how many values differ, the
/// first one, the largest difference.
public func assertSameBits<A: Collection, B: Collection>(_ actual: A, _ expected: B, _ label: @autoclosure () -> String,
                                                           file: StaticString = #filePath, line: UInt = #line)
    where A.Element == Float, B.Element == Float {
    let a = Array(actual), b = Array(expected)
    guard a.count == b.count else { return XCTFail("\(label()): \(a.count) values vs \(b.count)", file: file, line: line) }
    var differ = 0, first = -1
    var largest: Float = 0
    for i in 0..<a.count where a[i].bitPattern != b[i].bitPattern {
        differ += 1
        if first < 0 { first = i }
        largest = max(largest, abs(a[i] - b[i]))
    }
    if differ > 0 {
        XCTFail("\(label()): \(differ) of \(a.count) values differ in their bits (first at [\(first)]: \(a[first]) vs \(b[first]); "
                + "largest |difference| \(largest))", file: file, line: line)
    }
}
