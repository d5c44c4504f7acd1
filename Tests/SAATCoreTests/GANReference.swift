// Float64 references, with float32 error bounds, of the GAN layers (ConvTranspose2d,
// InstanceNorm2d, LeakyReLU, Sigmoid, SpectralNorm, ResidualBlock, channel concatenation), in
// the scheme of ReferenceNetwork.swift: every value comes with a first-order bound E on how far
// the production float32 computation can be from it (any summation order, any thread split), and
// input errors are propagated through the absolute Jacobian.
//
// Layers that compute in float64 and round once (InstanceNorm2d, Sigmoid, SpectralNorm's W/σ and
// its weight gradient) are bounded by u·|value| (the final rounding; u = 2⁻²⁴ for the production
// comparison, 2⁻⁵³ when the chain bounds its own noise) plus twice a running bound B of the
// float64 evaluation at U = 2⁻⁵³ (production and reference each within B of the exact value).
import Foundation
import XCTest
import NumericBounds
import HashKernels
@testable import SAATCore

private let U64 = Rounding.float64

// MARK: ConvTranspose2d

/// `ConvTranspose2d` by its scatter definition: y[n, o, i·s − p + u, j·s − p + v] +=
/// x[n, c, i, j]·w[c, o, u, v], + b[o]. Production bounds (see ConvTranspose2d's method):
/// - y: Wᵀ·x[n] (C terms per column entry), col2im adding ≤ k² entries into a zeroed buffer, then
///   the bias: a chain of ≤ C + k² roundings per term, ≤ C·k² + 1 (as RefConv's ∂x);
/// - ∂x: im2col + sgemm over O·k² terms;
/// - ∂W: per-image GEMMs (β = 1) into per-part sums, then the parts: N·(H·W + 1) + 1 (as RefConv);
/// - ∂b: per-plane sums (OH·OW terms), then N adds into the zeroed gradient.
/// Callers keep the layer off Winograd's path (fewer than 16 channels on a side).
final class RefConvTranspose: RefLayer {
    let cin: Int, cout: Int, k: Int, s: Int, p: Int, op: Int, hasBias: Bool
    var params: [[Double]]
    private(set) var grads: [Bounded] = []
    private var input: Bounded?

    init(cin: Int, cout: Int, k: Int, s: Int, p: Int, op: Int, weight: [Double], bias: [Double]?) {
        precondition(weight.count == cin * cout * k * k && (bias == nil || bias!.count == cout))
        self.cin = cin; self.cout = cout; self.k = k; self.s = s; self.p = p; self.op = op
        hasBias = bias != nil
        params = bias.map { [weight, $0] } ?? [weight]
    }
    convenience init(_ l: ConvTranspose2d) {
        self.init(cin: l.inChannels, cout: l.outChannels, k: l.kernel, s: l.stride, p: l.padding, op: l.outputPadding,
                  weight: l.weight.value.data.map(Double.init), bias: l.bias?.value.data.map(Double.init))
    }

    private func dims(_ shape: [Int]) -> (n: Int, h: Int, w: Int, oh: Int, ow: Int) {
        precondition(shape.count == 4 && shape[1] == cin, "RefConvTranspose: input \(shape)")
        let h = shape[2], w = shape[3]
        return (shape[0], h, w, (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op)
    }

    /// Calls body(xIndex, yIndexWithinPlane, u, v) for every input position (i, j) of plane size
    /// h×w and kernel tap (u, v) landing inside the oh×ow output.
    private func taps(_ d: (n: Int, h: Int, w: Int, oh: Int, ow: Int), _ body: (Int, Int, Int, Int) -> Void) {
        for i in 0..<d.h { for j in 0..<d.w { for u in 0..<k { for v in 0..<k {
            let y = i * s - p + u, x = j * s - p + v
            if y >= 0 && y < d.oh && x >= 0 && x < d.ow { body(i * d.w + j, y * d.ow + x, u, v) }
        } } } }
    }

    func forward(_ x: Bounded, u: Double) -> Bounded {
        let d = dims(x.shape)
        let w = params[0], P = d.oh * d.ow, Q = d.h * d.w
        var val = [Double](repeating: 0, count: d.n * cout * P), mag = val, ein = val
        for n in 0..<d.n { for o in 0..<cout {
            let yb = (n * cout + o) * P
            if hasBias { for t in 0..<P { val[yb + t] = params[1][o]; mag[yb + t] = abs(params[1][o]) } }
            for c in 0..<cin {
                let xb = (n * cin + c) * Q
                taps(d) { xi, yi, uu, vv in
                    let wv = w[((c * cout + o) * k + uu) * k + vv], prod = wv * x.v[xb + xi]
                    val[yb + yi] += prod; mag[yb + yi] += abs(prod); ein[yb + yi] += abs(wv) * x.e[xb + xi]
                }
            }
        } }
        input = x
        let g = gamma(cin * k * k + 1, u: u)
        return Bounded(shape: [d.n, cout, d.oh, d.ow], v: val, e: zip(ein, mag).map { $0 + g * $1 })
    }

    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let x = input else { preconditionFailure("RefConvTranspose.backward before forward") }
        let d = dims(x.shape)
        let w = params[0], P = d.oh * d.ow, Q = d.h * d.w
        precondition(dy.shape == [d.n, cout, d.oh, d.ow], "RefConvTranspose.backward: dy \(dy.shape)")
        var dxv = [Double](repeating: 0, count: x.count), dxm = dxv, dxe = dxv
        var gwv = [Double](repeating: 0, count: w.count), gwm = gwv, gwe = gwv
        var gbv = [Double](repeating: 0, count: cout), gbm = gbv, gbe = gbv
        for n in 0..<d.n { for o in 0..<cout {
            let yb = (n * cout + o) * P
            for t in 0..<P { gbv[o] += dy.v[yb + t]; gbm[o] += abs(dy.v[yb + t]); gbe[o] += dy.e[yb + t] }
            for c in 0..<cin {
                let xb = (n * cin + c) * Q
                taps(d) { xi, yi, uu, vv in
                    let wi = ((c * cout + o) * k + uu) * k + vv, wv = w[wi]
                    let dv = dy.v[yb + yi], de = dy.e[yb + yi], xv = x.v[xb + xi], xe = x.e[xb + xi]
                    dxv[xb + xi] += wv * dv; dxm[xb + xi] += abs(wv * dv); dxe[xb + xi] += abs(wv) * de
                    gwv[wi] += dv * xv; gwm[wi] += abs(dv * xv); gwe[wi] += de * abs(xv) + abs(dv) * xe + de * xe
                }
            }
        } }
        let gx = gamma(cout * k * k, u: u)
        let gw = gamma(d.n * (Q + 1) + 1, u: u), gb = gamma(d.n * (P + 1) + 1, u: u)
        var gW = Bounded(shape: [cin, cout, k, k], v: gwv, e: zip(gwe, gwm).map { $0 + gw * $1 })
        gW.terms = d.n * (Q + 1) + 1
        grads = [gW]
        if hasBias {
            var gB = Bounded(shape: [cout], v: gbv, e: zip(gbe, gbm).map { $0 + gb * $1 })
            gB.terms = d.n * (P + 1) + 1
            grads.append(gB)
        }
        return Bounded(shape: x.shape, v: dxv, e: zip(dxe, dxm).map { $0 + gx * $1 })
    }
}

// MARK: InstanceNorm2d

/// `InstanceNorm2d` per plane of M values (see the file comment for the scheme). Running bounds of
/// the float64 evaluation (U = 2⁻⁵³), first order:
///   μ: γ_{M+1}·mean|x|;  d_i = x_i − μ: e_μ + U·(|d_i| + e_μ);
///   σ² = Σd²/M: mean(2|d|·e_d) + γ_{M+2}·σ²;  r = (σ² + ε)^(−1/2): r·(½(e_σ² + U(σ² + ε))/(σ² + ε) + 2U);
///   x̂_i = d_i·r: r·e_d + |d_i|·e_r + U|x̂_i|;  y_i = x̂_i·γ + β: |γ|·e_x̂ + γ_2·(|x̂γ| + |β|).
/// Backward (g = γ·∂y, m1 = γ·Σ∂y/M, m2 = γ·Σ∂y·x̂/M, t = g − m1 − x̂·m2, ∂x = r·t):
///   e_m1 = |γ|γ_M·Σ|∂y|/M + γ_2|m1|;  e_m2 = |γ|(Σ|∂y|e_x̂ + γ_{M+1}Σ|∂y x̂|)/M + γ_2|m2|;
///   e_t = U|g| + e_m1 + |x̂|e_m2 + |m2|e_x̂ + γ_3(|g| + |m1| + |x̂ m2|);  e_∂x = r·e_t + |t|·e_r + U|∂x|.
/// Input errors E (first order, |∂y_i/∂x_j| ≤ r(δ_ij + 1/M + |x̂_i x̂_j|/M)):
///   forward |γ|·r·(E_i + mean E + |x̂_i|·A), A = mean(|x̂|·E);
///   backward through ∂y's errors the same form with |γ|·E_∂y, and through x's errors
///   r·A·|∂x_i| + r·(E_x̂,i·|m2| + |x̂_i|·mean(|g|·E_x̂)), E_x̂ = r(E + mean E + |x̂|·A).
final class RefInstanceNorm: RefLayer {
    let channels: Int, eps: Double, affine: Bool
    var params: [[Double]]
    private(set) var grads: [Bounded] = []
    private var input: Bounded?

    init(channels: Int, eps: Double, gamma: [Double]?, beta: [Double]?) {
        self.channels = channels; self.eps = eps
        affine = gamma != nil
        params = affine ? [gamma!, beta!] : []
    }
    convenience init(_ l: InstanceNorm2d) {
        self.init(channels: l.channels, eps: l.eps, gamma: l.weight?.value.data.map(Double.init),
                  beta: l.bias?.value.data.map(Double.init))
    }

    /// One plane's statistics and normalised values with their float64 evaluation bounds.
    struct Plane {
        var r = 0.0, er = 0.0
        var xh: [Double] = [], exh: [Double] = []   // x̂ and its float64 evaluation bound
        var d: [Double] = []
        var inE: [Double] = []                        // input errors E
        var A = 0.0, meanE = 0.0
    }

    private func plane(_ x: Bounded, _ q: Int, _ M: Int) -> Plane {
        var pl = Plane()
        let xs = Array(x.v[(q * M)..<((q + 1) * M)])
        pl.inE = Array(x.e[(q * M)..<((q + 1) * M)])
        let mu = xs.reduce(0, +) / Double(M)
        let emu = gamma(M + 1, u: U64) * xs.map(abs).reduce(0, +) / Double(M)
        pl.d = xs.map { $0 - mu }
        let ed = pl.d.map { emu + U64 * (abs($0) + emu) }
        let varv = pl.d.map { $0 * $0 }.reduce(0, +) / Double(M)
        let evar = zip(pl.d, ed).map { 2 * abs($0) * $1 }.reduce(0, +) / Double(M) + gamma(M + 2, u: U64) * varv
        pl.r = 1 / (varv + eps).squareRoot()
        pl.er = pl.r * (0.5 * (evar + U64 * (varv + eps)) / (varv + eps) + 2 * U64)
        pl.xh = pl.d.map { $0 * pl.r }
        pl.exh = (0..<M).map { pl.r * ed[$0] + abs(pl.d[$0]) * pl.er + U64 * abs(pl.xh[$0]) }
        pl.meanE = pl.inE.reduce(0, +) / Double(M)
        pl.A = zip(pl.xh, pl.inE).map { abs($0) * $1 }.reduce(0, +) / Double(M)
        return pl
    }

    private func dims(_ shape: [Int]) -> (n: Int, M: Int) {
        precondition(shape.count == 4 && shape[1] == channels, "RefInstanceNorm: input \(shape)")
        return (shape[0], shape[2] * shape[3])
    }

    func forward(_ x: Bounded, u: Double) -> Bounded {
        let (n, M) = dims(x.shape)
        var y = Bounded(zeros: x.shape)
        for q in 0..<(n * channels) {
            let pl = plane(x, q, M), c = q % channels
            let ga = affine ? params[0][c] : 1, be = affine ? params[1][c] : 0
            for i in 0..<M {
                let v = pl.xh[i] * ga + be
                let b64 = abs(ga) * pl.exh[i] + gamma(2, u: U64) * (abs(pl.xh[i] * ga) + abs(be))
                let prop = abs(ga) * pl.r * (pl.inE[i] + pl.meanE + abs(pl.xh[i]) * pl.A)
                y.v[q * M + i] = v
                y.e[q * M + i] = u * abs(v) + 2 * b64 + prop
            }
        }
        input = x
        return y
    }

    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let x = input else { preconditionFailure("RefInstanceNorm.backward before forward") }
        let (n, M) = dims(x.shape)
        precondition(dy.shape == x.shape, "RefInstanceNorm.backward: dy \(dy.shape)")
        var dx = Bounded(zeros: x.shape)
        var gGamma = Bounded(zeros: [channels]), gBeta = Bounded(zeros: [channels])
        var gGammaMag = [Double](repeating: 0, count: channels), gBetaMag = gGammaMag
        var gGammaB = gGammaMag   // Σ|∂y|·e_x̂ (float64 evaluation of x̂)
        for q in 0..<(n * channels) {
            let pl = plane(x, q, M), c = q % channels, base = q * M
            let ga = affine ? params[0][c] : 1
            let dv = Array(dy.v[base..<(base + M)]), de = Array(dy.e[base..<(base + M)])
            let s1 = dv.reduce(0, +), s2 = zip(dv, pl.xh).map { $0 * $1 }.reduce(0, +)
            let m1 = ga * s1 / Double(M), m2 = ga * s2 / Double(M)
            let absDy = dv.map(abs).reduce(0, +)
            let dyExh = zip(dv, pl.exh).map { abs($0) * $1 }.reduce(0, +)
            let absDyXh = zip(dv, pl.xh).map { abs($0 * $1) }.reduce(0, +)
            let em1 = abs(ga) * gamma(M, u: U64) * absDy / Double(M) + gamma(2, u: U64) * abs(m1)
            let em2 = abs(ga) * (dyExh + gamma(M + 1, u: U64) * absDyXh) / Double(M) + gamma(2, u: U64) * abs(m2)
            // Input-error propagation terms.
            let meanDe = de.reduce(0, +) / Double(M)
            let deA = zip(pl.xh, de).map { abs($0) * $1 }.reduce(0, +) / Double(M)
            let exhIn = (0..<M).map { pl.r * (pl.inE[$0] + pl.meanE + abs(pl.xh[$0]) * pl.A) }
            let gExhIn = (0..<M).map { abs(ga * dv[$0]) * exhIn[$0] }.reduce(0, +) / Double(M)
            for i in 0..<M {
                let g = ga * dv[i], xh = pl.xh[i]
                let t = g - m1 - xh * m2, v = pl.r * t
                let et = U64 * abs(g) + em1 + abs(xh) * em2 + abs(m2) * pl.exh[i]
                    + gamma(3, u: U64) * (abs(g) + abs(m1) + abs(xh * m2))
                let b64 = pl.r * et + abs(t) * pl.er + U64 * abs(v)
                let fromDy = abs(ga) * pl.r * (de[i] + meanDe + abs(xh) * deA)
                let fromX = pl.r * pl.A * abs(v) + pl.r * (exhIn[i] * abs(m2) + abs(xh) * gExhIn)
                dx.v[base + i] = v
                dx.e[base + i] = u * abs(v) + 2 * b64 + fromDy + fromX
            }
            if affine {
                gGamma.v[c] += s2; gGammaMag[c] += absDyXh; gGammaB[c] += dyExh
                gGamma.e[c] += zip(de, pl.xh).map { $0 * abs($1) }.reduce(0, +)
                    + (0..<M).map { abs(dv[$0]) * exhIn[$0] }.reduce(0, +)
                gBeta.v[c] += s1; gBetaMag[c] += absDy
                gBeta.e[c] += de.reduce(0, +)
            }
        }
        if affine {
            let g = gamma(n * M + n, u: U64)
            for c in 0..<channels {
                gGamma.e[c] += u * abs(gGamma.v[c]) + 2 * (gGammaB[c] + g * gGammaMag[c])
                gBeta.e[c] += u * abs(gBeta.v[c]) + 2 * g * gBetaMag[c]
            }
            grads = [gGamma, gBeta]
        }
        return dx
    }
}

// MARK: LeakyReLU / Sigmoid

/// `LeakyReLU(a)`: 1-Lipschitz·max(1, |a|) forwards, one rounding for a·x. Backwards a unit with
/// |x| ≤ E_x may take either branch in float32: its bound becomes |1 − a|·|∂y| + max(1, |a|)·E_∂y.
final class RefLeakyReLU: RefLayer {
    let a: Double
    private var x: Bounded?
    init(slope: Float) { a = Double(slope) }
    private var lip: Double { max(1, abs(a)) }
    func forward(_ x: Bounded, u: Double) -> Bounded {
        self.x = x
        var y = x
        for i in 0..<x.count {
            let v = x.v[i], e = x.e[i]
            y.v[i] = v > 0 ? v : a * v
            y.e[i] = lip * e + (v - e <= 0 ? u * abs(a) * (abs(v) + e) : 0)
        }
        return y
    }
    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let x else { preconditionFailure("RefLeakyReLU.backward before forward") }
        var dx = dy
        for i in 0..<x.count {
            let v = x.v[i], e = x.e[i], d = dy.v[i], de = dy.e[i]
            if v - e > 0 {
                dx.v[i] = d; dx.e[i] = de
            } else if v + e <= 0 {
                dx.v[i] = a * d; dx.e[i] = abs(a) * de + u * abs(a * d)
            } else {
                dx.v[i] = v > 0 ? d : a * d
                dx.e[i] = abs(1 - a) * abs(d) + lip * de + u * abs(a * d)
            }
        }
        return dx
    }
    var signature: [Int] { (x?.v ?? []).map { $0 > 0 ? 1 : 0 } }
}

/// `Sigmoid`: s = 1/(1 + e^(−x)) and σ' = t/(1 + t)², t = e^(−|x|), evaluated in float64 and
/// rounded once. Float64 evaluation: exp within 1 ulp (2U relative), then 2 roundings for s
/// (4U in all) and 3 for σ' plus the product with ∂y (6U in all).
final class RefSigmoid: RefLayer {
    private var x: Bounded?
    static func s(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
    static func ds(_ x: Double) -> Double { let t = Foundation.exp(-abs(x)); return t / ((1 + t) * (1 + t)) }
    func forward(_ x: Bounded, u: Double) -> Bounded {
        self.x = x
        var y = x
        for i in 0..<x.count {
            let s = Self.s(x.v[i])
            y.v[i] = s
            y.e[i] = u * s + 2 * 4 * U64 * s + Self.ds(x.v[i]) * x.e[i]
        }
        return y
    }
    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let x else { preconditionFailure("RefSigmoid.backward before forward") }
        var dx = dy
        for i in 0..<x.count {
            let d1 = Self.ds(x.v[i]), s = Self.s(x.v[i])
            let v = dy.v[i] * d1
            dx.v[i] = v
            dx.e[i] = u * abs(v) + 2 * 6 * U64 * abs(v) + d1 * dy.e[i] + abs(dy.v[i]) * d1 * abs(1 - 2 * s) * x.e[i]
        }
        return dx
    }
}

// MARK: SpectralNorm

/// `SpectralNorm` around a reference layer whose params are [weight] or [weight, bias], with the
/// production layer's u and v (after its forward's power iteration: constants of the graph).
/// Params/grads in the production order: [bias,] weight_orig.
///
/// Bounds: σ = Σ u_i·(W v)_i in float64 has |error| ≤ e_σ = γ_{h+w+1}(U)·Σ|u_i W_ij v_j| (each
/// term a chain of ≤ h + w roundings). W_sn = W/σ is rounded once to float32 after a float64
/// division: E_Wsn = |W_sn|·(u + U + 2e_σ/|σ|). Its effect on the wrapped layer's output and
/// input gradient is bounded by running the wrapped reference with weight E_Wsn (and bias 0) on
/// |x| and on |∂y| (all terms nonnegative, so the float64 value is the bound Σ E_W·|x|).
/// ∂W = G/σ − (⟨G, W⟩/σ²)·u vᵀ (float64, rounded once; G the wrapped layer's weight gradient with
/// its bound E_G): E = u|∂W| + E_G/|σ| + |u_r v_c|/σ²·Σ|W|E_G + (|G|/σ² + 2|c|/|σ|³·|u_r v_c|)·2e_σ
/// + 2·[U|G/σ| + |u_r v_c|·(γ_{count}(U)·Σ|G W|/σ² + γ_4(U)·|c|/σ²) + U|∂W|].
final class RefSpectralNorm: RefLayer {
    let inner: RefLayer
    let u: [Double], v: [Double]
    let rowOf: [Int], colOf: [Int]
    let hasBias: Bool
    var weight: [Double]
    private(set) var grads: [Bounded] = []
    private var sigma = 0.0, eSigma = 0.0

    /// `layer` is the production wrapper (after its forward); `inner` the wrapped layer's
    /// reference (its weight is replaced by W/σ here).
    init(_ layer: SpectralNorm, inner: RefLayer) {
        self.inner = inner
        u = layer.u.data.map(Double.init); v = layer.v.data.map(Double.init)
        let shape = layer.weightOrig.value.shape, d = layer.dim
        let count = shape.reduce(1, *), h = shape[d], rest = shape[(d + 1)...].reduce(1, *)
        rowOf = (0..<count).map { ($0 / rest) % h }
        colOf = (0..<count).map { ($0 / (rest * h)) * rest + $0 % rest }
        hasBias = inner.params.count == 2
        weight = layer.weightOrig.value.data.map(Double.init)
    }

    var params: [[Double]] {
        get { hasBias ? [inner.params[1], weight] : [weight] }
        set {
            weight = newValue.last!
            if hasBias { inner.params = [inner.params[0], newValue[0]] }
        }
    }

    private func normalisedWeight(u uu: Double) -> (w: [Double], e: [Double]) {
        var s = 0.0, mag = 0.0
        for f in 0..<weight.count {
            s += u[rowOf[f]] * weight[f] * v[colOf[f]]
            mag += abs(u[rowOf[f]] * weight[f] * v[colOf[f]])
        }
        sigma = s
        eSigma = gamma(u.count + v.count + 1, u: U64) * mag
        let w = weight.map { $0 / s }
        return (w, w.map { abs($0) * (uu + U64 + 2 * eSigma / abs(s)) })
    }

    private var bias: [Double] { hasBias ? inner.params[1] : [] }
    private func set(_ w: [Double], _ b: [Double]) { inner.params = hasBias ? [w, b] : [w] }

    /// `pass` (the inner layer's forward or backward) of `x` with the weight W/σ, its bounds
    /// widened by the same pass of |x| through the bounds of W/σ (the effect of W/σ's rounding).
    private func throughNormalisedWeight(_ x: Bounded, u uu: Double,
                                         _ pass: (Bounded, Double) -> Bounded) -> Bounded {
        let (w, ew) = normalisedWeight(u: uu)
        let b = bias
        set(ew, b.map { _ in 0 })
        let extra = pass(Bounded(exactValues: x.v.map(abs), shape: x.shape), uu)
        set(w, b)
        var y = pass(x, uu)
        for i in 0..<y.count { y.e[i] += extra.v[i] }
        return y
    }

    func forward(_ x: Bounded, u uu: Double) -> Bounded {
        throughNormalisedWeight(x, u: uu) { inner.forward($0, u: $1) }
    }

    func backward(_ dy: Bounded, u uu: Double) -> Bounded {
        let dx = throughNormalisedWeight(dy, u: uu) { inner.backward($0, u: $1) }
        let G = inner.grads[0]
        let s = sigma, es = eSigma
        var c = 0.0, cMag = 0.0, wEG = 0.0
        for f in 0..<weight.count { c += G.v[f] * weight[f]; cMag += abs(G.v[f] * weight[f]); wEG += abs(weight[f]) * G.e[f] }
        var gw = Bounded(shape: G.shape, v: G.v, e: G.e)
        for f in 0..<weight.count {
            let outer = u[rowOf[f]] * v[colOf[f]], ao = abs(outer)
            let val = G.v[f] / s - c / (s * s) * outer
            let fromG = G.e[f] / abs(s) + ao / (s * s) * wEG
            let fromSigma = (abs(G.v[f]) / (s * s) + 2 * abs(c) / abs(s * s * s) * ao) * 2 * es
            let b64 = U64 * abs(G.v[f] / s) + ao * (gamma(weight.count, u: U64) * cMag / (s * s) + gamma(4, u: U64) * abs(c) / (s * s))
                + U64 * abs(val)
            gw.v[f] = val
            gw.e[f] = uu * abs(val) + fromG + fromSigma + 2 * b64
        }
        grads = hasBias ? [inner.grads[1], gw] : [gw]
        return dx
    }

    var signature: [Int] { inner.signature }
}

extension Bounded {
    /// Exact values `v` of `shape` (zero bounds).
    init(exactValues v: [Double], shape: [Int]) {
        self.init(shape: shape, v: v, e: [Double](repeating: 0, count: v.count))
    }
}

// MARK: ResidualBlock / concatenation

/// `ResidualBlock`: x + block(x) (one rounding for the sum, bounds of both terms added); the
/// block's steps are the existing and the above references, their bounds compounding through it.
final class RefResidual: RefLayer {
    let conv1: RefConv, norm1: RefInstanceNorm, relu: RefReLU, conv2: RefConv, norm2: RefInstanceNorm
    private var parts: [RefLayer] { [conv1, norm1, relu, conv2, norm2] }
    init(_ b: ResidualBlock) {
        conv1 = RefConv(b.conv1); norm1 = RefInstanceNorm(b.norm1); relu = RefReLU()
        conv2 = RefConv(b.conv2); norm2 = RefInstanceNorm(b.norm2)
    }
    var params: [[Double]] {
        get { conv1.params + conv2.params }
        set {
            let n1 = conv1.params.count
            conv1.params = Array(newValue[0..<n1]); conv2.params = Array(newValue[n1...])
        }
    }
    var grads: [Bounded] { conv1.grads + conv2.grads }
    var signature: [Int] { relu.signature }
    static func sum(_ a: Bounded, _ b: Bounded, u: Double) -> Bounded {
        var y = a
        for i in 0..<a.count { y.v[i] = a.v[i] + b.v[i]; y.e[i] = a.e[i] + b.e[i] + u * abs(y.v[i]) }
        return y
    }
    func forward(_ x: Bounded, u: Double) -> Bounded { Self.sum(x, parts.reduce(x) { $1.forward($0, u: u) }, u: u) }
    func backward(_ dy: Bounded, u: Double) -> Bounded {
        Self.sum(dy, parts.reversed().reduce(dy) { $1.backward($0, u: u) }, u: u)
    }
}

/// A skip connection through `ChannelConcat` as one layer (the test's `SkipConcat`):
/// y = cat(x, f(x)); ∂x = ∂y[:, :C] + f'(∂y[:, C:]). Copies are exact; the sum rounds once.
final class RefSkipConcat: RefLayer {
    let inner: RefLayer
    private var split = (0, 0), rest = 0
    init(_ inner: RefLayer) { self.inner = inner }
    var params: [[Double]] { get { inner.params } set { inner.params = newValue } }
    var grads: [Bounded] { inner.grads }
    var signature: [Int] { inner.signature }
    func forward(_ x: Bounded, u: Double) -> Bounded {
        let f = inner.forward(x, u: u)
        let n = x.shape[0], sa = x.count / n, sb = f.count / n
        split = (x.shape[1], f.shape[1]); rest = sa / x.shape[1]
        var shape = x.shape; shape[1] += f.shape[1]
        var y = Bounded(zeros: shape)
        for img in 0..<n {
            for i in 0..<sa { y.v[img * (sa + sb) + i] = x.v[img * sa + i]; y.e[img * (sa + sb) + i] = x.e[img * sa + i] }
            for i in 0..<sb { y.v[img * (sa + sb) + sa + i] = f.v[img * sb + i]; y.e[img * (sa + sb) + sa + i] = f.e[img * sb + i] }
        }
        return y
    }
    func backward(_ dy: Bounded, u: Double) -> Bounded {
        let n = dy.shape[0], sa = split.0 * rest, sb = split.1 * rest
        var sha = dy.shape, shb = dy.shape
        sha[1] = split.0; shb[1] = split.1
        var da = Bounded(zeros: sha), db = Bounded(zeros: shb)
        for img in 0..<n {
            for i in 0..<sa { da.v[img * sa + i] = dy.v[img * (sa + sb) + i]; da.e[img * sa + i] = dy.e[img * (sa + sb) + i] }
            for i in 0..<sb { db.v[img * sb + i] = dy.v[img * (sa + sb) + sa + i]; db.e[img * sb + i] = dy.e[img * (sa + sb) + sa + i] }
        }
        return RefResidual.sum(da, inner.backward(db, u: u), u: u)
    }
}
