// A float64 reference of the network layers that also bounds the error of the float32 kernels.
//
// Every reference layer computes its output (and, backwards, its input and parameter gradients)
// in float64 with plain loops, and next to each value a bound E on how far the production float32
// computation of the same value can be from it, whatever summation order the CPU's BLAS kernels
// or the thread split use (a first-order running error analysis in the standard model
// fl(a ∘ b) = (a ∘ b)(1 + δ), |δ| ≤ u; see NumericBounds):
//
// - sums (conv, linear, their adjoints): E_out = Σ|a|·E_b + Σ|b|·E_a + γ_n·Σ|a·b|, with n the
//   number of terms the production sum can have (bias and accumulation included);
// - ReLU and max-pool are 1-Lipschitz, so E passes through (the window's largest E for a pool);
//   backwards, a unit whose pre-activation z is within E_z of 0 may have the other mask in
//   float32, so its gradient bound becomes |δ| + E_δ (likewise every near-tied pool candidate);
//   the bound thus stays sound at kinks instead of needing probes kept away from them;
// - tanh: E_y = (1 − y²)·E_t + 4u·|y| (glibc's tanhf is within 2 ulp ≤ 4u·|y|);
// - one rounding per elementwise product (dropout, normalisation).
//
// Passed u = 2⁻²⁴, the bounds are the float32 tolerances of the production comparison; passed
// u = 2⁻⁵³, they bound the reference's own rounding (the noise of its finite differences).
// The reference's gradients are checked against central differences in float64, which rounding
// noise cannot move (`checkReferenceByFiniteDifferences`).
import Foundation
import XCTest
import NumericBounds
import HashKernels
@testable import SAATCore

/// Values in float64 with per-value error bounds (see the file comment).
struct Bounded {
    var shape: [Int]
    var v: [Double]
    var e: [Double]
    /// For a plain sum (the parameter gradients): the number of terms n its bound's γ_n counts,
    /// so a test can bound the same sum with one more term (accumulation into a gradient).
    var terms = 0
    init(shape: [Int], v: [Double], e: [Double]) {
        precondition(v.count == shape.reduce(1, *) && e.count == v.count)
        self.shape = shape; self.v = v; self.e = e
    }
    init(zeros shape: [Int]) {
        let n = shape.reduce(1, *)
        self.init(shape: shape, v: [Double](repeating: 0, count: n), e: [Double](repeating: 0, count: n))
    }
    /// A float32 tensor taken as exact (its float64 value is the float32 value).
    init(exact t: Tensor) {
        self.init(shape: t.shape, v: t.data.map(Double.init), e: [Double](repeating: 0, count: t.count))
    }
    var count: Int { v.count }
}

/// One layer of the reference. `backward` uses what the last `forward` cached and sets `grads`
/// (∂L/∂θ of that call, not accumulated), in the production layer's parameter order.
protocol RefLayer: AnyObject {
    func forward(_ x: Bounded, u: Double) -> Bounded
    func backward(_ dy: Bounded, u: Double) -> Bounded
    /// Parameters as float64 (exactly the production float32 values), read and perturbed by
    /// the finite-difference check.
    var params: [[Double]] { get set }
    var grads: [Bounded] { get }
    /// The kinks the last forward chose (ReLU masks, pool argmaxes): a finite-difference probe
    /// is only valid if it leaves them unchanged.
    var signature: [Int] { get }
}

extension RefLayer {
    var params: [[Double]] { get { [] } set {} }
    var grads: [Bounded] { [] }
    var signature: [Int] { [] }
}

// MARK: layers

/// `Conv2d`: y = b + Σ w·x (zero padding). Production: one sgemm per image (C·k·k terms) plus the
/// bias; ∂x: an sgemm over O then col2im adding ≤ k² of its values; ∂W, ∂b: sums over the N·P
/// output positions in per-image GEMMs (β = 1), per-part sums, then the parts. A layer that
/// `Winograd.applies` to computes y and ∂x by Winograd F(m×m, 3×3) instead: their float32
/// rounding terms are then γ_{C+e+1} and γ_{O+e} times the Winograd magnitude (e =
/// winogradExtraRoundings(tile: m, kernel: k))
/// (NumericBounds.winogradMagnitude), while input errors still propagate through the exact
/// convolution (Σ|w|·E). At u = 2⁻⁵³ the bounds describe these float64 loops, which are direct.
final class RefConv: RefLayer {
    let cin: Int, cout: Int, k: Int, s: Int, p: Int
    var params: [[Double]]
    private(set) var grads: [Bounded] = []
    private var input: Bounded?

    /// Without a bias (`Conv2d(bias: false)`), `params` is [weight] alone.
    let hasBias: Bool

    init(cin: Int, cout: Int, k: Int, s: Int, p: Int, weight: [Double], bias: [Double]?) {
        precondition(weight.count == cout * cin * k * k && (bias == nil || bias!.count == cout))
        self.cin = cin; self.cout = cout; self.k = k; self.s = s; self.p = p
        hasBias = bias != nil
        params = bias.map { [weight, $0] } ?? [weight]
    }

    /// The Winograd tile size m of F(m×m, 3×3) the production layer runs its forward and ∂x by
    /// on images of this size, nil when it does not use Winograd.
    private func winograd(_ h: Int, _ w: Int) -> Int? {
        Winograd.tileSize(Conv2DGeometry(batch: 1, inChannels: cin, height: h, width: w, outChannels: cout,
                                         kernel: k, stride: s, padding: p))
    }
    convenience init(_ c: Conv2d) {
        self.init(cin: c.inChannels, cout: c.outChannels, k: c.kernel, s: c.stride, p: c.padding,
                  weight: c.weight.value.data.map(Double.init), bias: c.hasBias ? c.bias.value.data.map(Double.init) : nil)
    }

    private func dims(_ shape: [Int]) -> (n: Int, h: Int, w: Int, oh: Int, ow: Int) {
        precondition(shape.count == 4 && shape[1] == cin, "RefConv: input \(shape)")
        let h = shape[2], w = shape[3]
        return (shape[0], h, w, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1)
    }

    /// Output columns j with 0 ≤ j·s − p + v < W (floor divisions: p − v and W − 1 + p − v may be
    /// negative).
    private func columns(_ v: Int, _ w: Int, _ ow: Int) -> Range<Int> {
        func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
        let lo = max(0, -floorDiv(v - p, s)), hi = min(ow, floorDiv(w - 1 + p - v, s) + 1)
        return lo..<max(lo, hi)
    }

    func forward(_ x: Bounded, u: Double) -> Bounded {
        let d = dims(x.shape)
        let wt = params[0], b = hasBias ? params[1] : [Double](repeating: 0, count: cout)
        let plane = d.oh * d.ow
        var val = [Double](repeating: 0, count: d.n * cout * plane)
        var mag = val, ein = val
        val.withUnsafeMutableBufferPointer { yv in mag.withUnsafeMutableBufferPointer { ym in
        ein.withUnsafeMutableBufferPointer { ye in x.v.withUnsafeBufferPointer { xv in x.e.withUnsafeBufferPointer { xe in
            for n in 0..<d.n { for o in 0..<cout {
                let ybase = (n * cout + o) * plane
                for t in 0..<plane { yv[ybase + t] = b[o]; ym[ybase + t] = abs(b[o]) }
                for c in 0..<cin { for uu in 0..<k { for vv in 0..<k {
                    let wv = wt[((o * cin + c) * k + uu) * k + vv], aw = abs(wv)
                    let cols = columns(vv, d.w, d.ow)
                    for i in 0..<d.oh {
                        let h = i * s - p + uu
                        if h < 0 || h >= d.h { continue }
                        let xrow = ((n * cin + c) * d.h + h) * d.w - p + vv, yrow = ybase + i * d.ow
                        for j in cols {
                            let xi = xrow + j * s, prod = wv * xv[xi]
                            yv[yrow + j] += prod; ym[yrow + j] += abs(prod); ye[yrow + j] += aw * xe[xi]
                        }
                    }
                } } }
            } }
        } } } } }
        var g = gamma(cin * k * k + 1, u: u)
        if let m = winograd(d.h, d.w), u >= Rounding.float32 {
            let wm = winogradMagnitude(input: x.v, weight: wt, batch: d.n, inChannels: cin, outChannels: cout,
                                       height: d.h, width: d.w, adjoint: false, tile: m, kernel: k)
            for t in mag.indices { mag[t] = abs(b[t / plane % cout]) + wm[t] }
            g = gamma(cin + winogradExtraRoundings(tile: m, kernel: k) + 1, u: u)
        }
        input = x
        return Bounded(shape: [d.n, cout, d.oh, d.ow], v: val, e: zip(ein, mag).map { $0 + g * $1 })
    }

    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let x = input else { preconditionFailure("RefConv.backward before forward") }
        let d = dims(x.shape)
        let plane = d.oh * d.ow
        precondition(dy.shape == [d.n, cout, d.oh, d.ow], "RefConv.backward: dy \(dy.shape)")
        let wt = params[0]
        var dxv = [Double](repeating: 0, count: x.count), dxm = dxv, dxe = dxv
        var gwv = [Double](repeating: 0, count: wt.count), gwm = gwv, gwe = gwv
        var gbv = [Double](repeating: 0, count: cout), gbm = gbv, gbe = gbv
        for n in 0..<d.n { for o in 0..<cout {
            let ybase = (n * cout + o) * plane
            for t in 0..<plane {
                gbv[o] += dy.v[ybase + t]; gbm[o] += abs(dy.v[ybase + t]); gbe[o] += dy.e[ybase + t]
            }
            for c in 0..<cin { for uu in 0..<k { for vv in 0..<k {
                let wi = ((o * cin + c) * k + uu) * k + vv, wv = wt[wi], aw = abs(wv)
                let cols = columns(vv, d.w, d.ow)
                var sv = 0.0, sm = 0.0, se = 0.0
                for i in 0..<d.oh {
                    let h = i * s - p + uu
                    if h < 0 || h >= d.h { continue }
                    let xrow = ((n * cin + c) * d.h + h) * d.w - p + vv, yrow = ybase + i * d.ow
                    for j in cols {
                        let xi = xrow + j * s, dv = dy.v[yrow + j], de = dy.e[yrow + j]
                        let xv = x.v[xi], xe = x.e[xi]
                        dxv[xi] += wv * dv; dxm[xi] += abs(wv * dv); dxe[xi] += aw * de
                        sv += dv * xv; sm += abs(dv * xv); se += de * abs(xv) + abs(dv) * xe + de * xe
                    }
                }
                gwv[wi] += sv; gwm[wi] += sm; gwe[wi] += se
            } } }
        } }
        var gx = gamma(cout * k * k + 1, u: u)
        if let m = winograd(d.h, d.w), u >= Rounding.float32 {   // ∂x = conv(δ, rot180(w)ᵀ), O → C channels
            dxm = winogradMagnitude(input: dy.v, weight: wt, batch: d.n, inChannels: cout, outChannels: cin,
                                    height: d.h, width: d.w, adjoint: true, tile: m, kernel: k)
            gx = gamma(cout + winogradExtraRoundings(tile: m, kernel: k), u: u)
        }
        // ∂W, ∂b: N·P products, per-image GEMMs into ≤ N per-part sums, then into the zeroed grad.
        let terms = d.n * (plane + 1) + 1, gp = gamma(terms, u: u)
        grads = [Bounded(shape: [cout, cin, k, k], v: gwv, e: zip(gwe, gwm).map { $0 + gp * $1 })]
        if hasBias { grads.append(Bounded(shape: [cout], v: gbv, e: zip(gbe, gbm).map { $0 + gp * $1 })) }
        for i in grads.indices { grads[i].terms = terms }
        return Bounded(shape: x.shape, v: dxv, e: zip(dxe, dxm).map { $0 + gx * $1 })
    }
}

/// `Linear`: y = W·x + b (I + 1 terms); ∂x = δ·W (O terms); ∂W, ∂b: N terms added to a zero grad.
final class RefLinear: RefLayer {
    let inF: Int, outF: Int
    var params: [[Double]]
    private(set) var grads: [Bounded] = []
    private var input: Bounded?

    init(inF: Int, outF: Int, weight: [Double], bias: [Double]) {
        precondition(weight.count == inF * outF && bias.count == outF)
        self.inF = inF; self.outF = outF
        params = [weight, bias]
    }
    convenience init(_ l: Linear) {
        self.init(inF: l.inFeatures, outF: l.outFeatures, weight: l.weight.value.data.map(Double.init),
                  bias: l.bias.value.data.map(Double.init))
    }

    func forward(_ x: Bounded, u: Double) -> Bounded {
        precondition(x.shape.count == 2 && x.shape[1] == inF, "RefLinear: input \(x.shape)")
        let n = x.shape[0], w = params[0], b = params[1]
        var y = Bounded(zeros: [n, outF])
        let g = gamma(inF + 1, u: u)
        for r in 0..<n { for o in 0..<outF {
            var sv = b[o], sm = abs(b[o]), se = 0.0
            for i in 0..<inF {
                let wv = w[o * inF + i], xv = x.v[r * inF + i]
                sv += wv * xv; sm += abs(wv * xv); se += abs(wv) * x.e[r * inF + i]
            }
            y.v[r * outF + o] = sv; y.e[r * outF + o] = se + g * sm
        } }
        input = x
        return y
    }

    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let x = input else { preconditionFailure("RefLinear.backward before forward") }
        let n = x.shape[0], w = params[0]
        precondition(dy.shape == [n, outF], "RefLinear.backward: dy \(dy.shape)")
        var dx = Bounded(zeros: x.shape)
        let gx = gamma(outF, u: u), gp = gamma(n + 1, u: u)
        for r in 0..<n { for i in 0..<inF {
            var sv = 0.0, sm = 0.0, se = 0.0
            for o in 0..<outF {
                let wv = w[o * inF + i], dv = dy.v[r * outF + o]
                sv += wv * dv; sm += abs(wv * dv); se += abs(wv) * dy.e[r * outF + o]
            }
            dx.v[r * inF + i] = sv; dx.e[r * inF + i] = se + gx * sm
        } }
        var gw = Bounded(zeros: [outF, inF]), gb = Bounded(zeros: [outF])
        for o in 0..<outF {
            var bv = 0.0, bm = 0.0, be = 0.0
            for r in 0..<n { let dv = dy.v[r * outF + o]; bv += dv; bm += abs(dv); be += dy.e[r * outF + o] }
            gb.v[o] = bv; gb.e[o] = be + gp * bm
            for i in 0..<inF {
                var sv = 0.0, sm = 0.0, se = 0.0
                for r in 0..<n {
                    let dv = dy.v[r * outF + o], de = dy.e[r * outF + o]
                    let xv = x.v[r * inF + i], xe = x.e[r * inF + i]
                    sv += dv * xv; sm += abs(dv * xv); se += de * abs(xv) + abs(dv) * xe + de * xe
                }
                gw.v[o * inF + i] = sv; gw.e[o * inF + i] = se + gp * sm
            }
        }
        gw.terms = n + 1; gb.terms = n + 1
        grads = [gw, gb]
        return dx
    }
}

/// `ReLU`. Backwards, a unit is certain when |z| > E_z; otherwise float32 may pick either mask.
final class RefReLU: RefLayer {
    private var z: Bounded?
    func forward(_ x: Bounded, u: Double) -> Bounded {
        z = x
        // A unit with z + E_z ≤ 0 is an exact 0 in float32 too.
        return Bounded(shape: x.shape, v: x.v.map { max($0, 0) },
                       e: zip(x.v, x.e).map { $0 + $1 <= 0 ? 0 : $1 })
    }
    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let z else { preconditionFailure("RefReLU.backward before forward") }
        var dx = Bounded(zeros: z.shape)
        for i in 0..<z.count {
            let zv = z.v[i], ze = z.e[i]
            if zv - ze > 0 {                 // certainly active
                dx.v[i] = dy.v[i]; dx.e[i] = dy.e[i]
            } else if zv + ze <= 0 {         // certainly off (float32 z ≤ 0 gives 0 exactly)
                continue
            } else {                         // within E_z of the kink: either mask
                dx.v[i] = zv > 0 ? dy.v[i] : 0; dx.e[i] = abs(dy.v[i]) + dy.e[i]
            }
        }
        return dx
    }
    var signature: [Int] { (z?.v ?? []).map { $0 > 0 ? 1 : 0 } }
}

/// `MaxPool2d` (floor mode, first maximum wins). A window is certain when one value beats every
/// other by more than both their bounds (or all its candidates are exact, so float32 breaks the
/// tie the same way); otherwise every candidate may receive the gradient in float32.
final class RefMaxPool: RefLayer {
    let k: Int, s: Int
    private var inputShape: [Int] = []
    private var argmax: [Int] = []
    private var candidates: [[Int]] = []   // per output: [] when certain
    init(k: Int, s: Int) { self.k = k; self.s = s }

    func forward(_ x: Bounded, u: Double) -> Bounded {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let oh = (h - k) / s + 1, ow = (w - k) / s + 1
        var y = Bounded(zeros: [n, c, oh, ow])
        argmax = []; candidates = []
        for pl in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var best = -Double.infinity, at = -1, emax = 0.0, lower = -Double.infinity
            var window: [Int] = []
            for uu in 0..<k { for vv in 0..<k {
                let idx = pl * h * w + (i * s + uu) * w + j * s + vv
                window.append(idx)
                if x.v[idx] > best { best = x.v[idx]; at = idx }
                emax = max(emax, x.e[idx]); lower = max(lower, x.v[idx] - x.e[idx])
            } }
            let cand = window.filter { x.v[$0] + x.e[$0] >= lower }
            let exactTie = cand.allSatisfy { x.e[$0] == 0 }
            let o = (pl * oh + i) * ow + j
            y.v[o] = best; y.e[o] = emax
            argmax.append(at)
            candidates.append(cand.count > 1 && !exactTie ? cand : [])
        } } }
        inputShape = x.shape
        return y
    }

    func backward(_ dy: Bounded, u: Double) -> Bounded {
        var dx = Bounded(zeros: inputShape)
        var terms = [Int](repeating: 0, count: dx.count), absSum = [Double](repeating: 0, count: dx.count)
        for o in 0..<argmax.count {
            let a = argmax[o], d = dy.v[o], de = dy.e[o]
            dx.v[a] += d
            if candidates[o].isEmpty {
                dx.e[a] += de; terms[a] += 1; absSum[a] += abs(d)
            } else {
                for c in candidates[o] { dx.e[c] += abs(d) + de; terms[c] += 1; absSum[c] += abs(d) + de }
            }
        }
        // Overlapping windows (stride < kernel) add several values at one position.
        for i in 0..<dx.count where terms[i] > 1 { dx.e[i] += gamma(terms[i] - 1, u: u) * absSum[i] }
        return dx
    }
    var signature: [Int] { argmax }
}

final class RefFlatten: RefLayer {
    private var inputShape: [Int] = []
    func forward(_ x: Bounded, u: Double) -> Bounded {
        inputShape = x.shape
        return Bounded(shape: [x.shape[0], x.count / max(1, x.shape[0])], v: x.v, e: x.e)
    }
    func backward(_ dy: Bounded, u: Double) -> Bounded { Bounded(shape: inputShape, v: dy.v, e: dy.e) }
}

/// `Dropout` with the production layer's mask of its last train-mode forward (the mask's float32
/// values define the function); nil: the identity (eval mode). One rounding per product.
final class RefDropout: RefLayer {
    let mask: [Double]?
    init(mask: Tensor?) { self.mask = mask?.data.map(Double.init) }
    private func apply(_ x: Bounded, u: Double) -> Bounded {
        guard let m = mask else { return x }
        precondition(m.count == x.count, "RefDropout: mask of \(m.count) values for \(x.count)")
        var y = x
        for i in 0..<x.count { y.v[i] = x.v[i] * m[i]; y.e[i] = abs(m[i]) * x.e[i] + u * abs(y.v[i]) }
        return y
    }
    func forward(_ x: Bounded, u: Double) -> Bounded { apply(x, u: u) }
    func backward(_ dy: Bounded, u: Double) -> Bounded { apply(dy, u: u) }
}

/// The model's input normalisation (x − mean)·(1/std) per channel; production computes
/// fl(fl(x − m)·fl(1/std)) (three roundings) and, backwards, fl(δ·fl(1/std)) (two).
final class RefNormalize: RefLayer {
    let mean: [Double], std: [Double]
    private var shape: [Int] = []
    init(mean: [Float], std: [Float]) { self.mean = mean.map(Double.init); self.std = std.map(Double.init) }
    private var identity: Bool { mean.allSatisfy { $0 == 0 } && std.allSatisfy { $0 == 1 } }
    private func channel(_ i: Int) -> Int { (i / (shape[2] * shape[3])) % shape[1] }
    func forward(_ x: Bounded, u: Double) -> Bounded {
        shape = x.shape
        if identity { return x }
        var y = x
        for i in 0..<x.count {
            let c = channel(i)
            y.v[i] = (x.v[i] - mean[c]) / std[c]
            y.e[i] = x.e[i] / std[c] + gamma(3, u: u) * abs(y.v[i])
        }
        return y
    }
    func backward(_ dy: Bounded, u: Double) -> Bounded {
        var dx = dy
        for i in 0..<dy.count {
            let c = channel(i)
            dx.v[i] = dy.v[i] / std[c]
            dx.e[i] = dy.e[i] / std[c] + gamma(2, u: u) * abs(dx.v[i])
        }
        return dx
    }
}

/// The hash head y = tanh(α·z). Production: tanhf(fl(α·z)), and backwards fl(g·fl(α·fl(1 − fl(y·y)))).
final class RefTanh: RefLayer {
    let alpha: Double
    private var y: Bounded?
    init(alpha: Float) { self.alpha = Double(alpha) }
    func forward(_ x: Bounded, u: Double) -> Bounded {
        var out = x
        for i in 0..<x.count {
            let t = alpha * x.v[i], te = abs(alpha) * x.e[i] + u * abs(t)
            let yv = Foundation.tanh(t)
            out.v[i] = yv
            out.e[i] = (1 - yv * yv) * te + 4 * u * abs(yv)
        }
        y = out
        return out
    }
    func backward(_ dy: Bounded, u: Double) -> Bounded {
        guard let y else { preconditionFailure("RefTanh.backward before forward") }
        var dz = dy
        for i in 0..<dy.count {
            let yv = y.v[i], ye = y.e[i], d = 1 - yv * yv
            dz.v[i] = dy.v[i] * alpha * d
            dz.e[i] = dy.e[i] * abs(alpha) * d + abs(dy.v[i] * alpha) * (2 * abs(yv) * ye + u * yv * yv)
                + gamma(3, u: u) * abs(dz.v[i])
        }
        return dz
    }
}

// MARK: chains

/// Several reference layers as one step (the fused conv → ReLU → pool block): the bounds of the
/// inner values compound through the ReLU and pool, whose ambiguity rules keep them sound.
final class RefSequence: RefLayer {
    let parts: [RefLayer]
    init(_ parts: [RefLayer]) { self.parts = parts }
    func forward(_ x: Bounded, u: Double) -> Bounded { parts.reduce(x) { $1.forward($0, u: u) } }
    func backward(_ dy: Bounded, u: Double) -> Bounded { parts.reversed().reduce(dy) { $1.backward($0, u: u) } }
    var params: [[Double]] {
        get { parts.flatMap { $0.params } }
        set {
            var i = 0
            for p in parts { let n = p.params.count; p.params = Array(newValue[i..<(i + n)]); i += n }
        }
    }
    var grads: [Bounded] { parts.flatMap { $0.grads } }
    var signature: [Int] { parts.flatMap { $0.signature } }
}

/// A sequence of reference layers; `grads` in the production's parameter order.
final class RefChain {
    let layers: [RefLayer]
    init(_ layers: [RefLayer]) { self.layers = layers }

    /// The reference of a production layer (weights copied; dropout masks from the layer's last
    /// train-mode forward when `mode` is `.train`).
    static func layer(_ l: Layer, mode: Mode) -> RefLayer {
        switch l {
        case let c as Conv2d: return RefConv(c)
        case let f as Linear: return RefLinear(f)
        case is ReLU: return RefReLU()
        case let m as MaxPool2d: return RefMaxPool(k: m.kernel, s: m.stride)
        case is Flatten: return RefFlatten()
        case let d as Dropout: return RefDropout(mask: mode == .train ? d.mask : nil)
        // The GAN layers (GANReference.swift); a spectral norm's reference reads the u, v its
        // production layer holds now (build it after that layer's forward in train mode).
        case let t as ConvTranspose2d: return RefConvTranspose(t)
        case let n as InstanceNorm2d: return RefInstanceNorm(n)
        case let r as LeakyReLU: return RefLeakyReLU(slope: r.negativeSlope)
        case is Sigmoid: return RefSigmoid()
        case let b as ResidualBlock: return RefResidual(b)
        case let sn as SpectralNorm: return RefSpectralNorm(sn, inner: layer(sn.layer, mode: mode))
        default: preconditionFailure("RefChain: no reference for \(type(of: l))")
        }
    }

    /// The reference of `model` as its last forward ran it (call after the production forward so
    /// the dropout masks are those it drew): normalisation, layers, tanh(α·).
    static func model(_ m: HashingModel, alpha: Float) -> RefChain {
        RefChain([RefNormalize(mean: m.mean, std: m.std)] + m.layers.map { layer($0.layer, mode: m.mode) }
                 + [RefTanh(alpha: alpha)])
    }

    func forward(_ x: Bounded, u: Double) -> Bounded { layers.reduce(x) { $1.forward($0, u: u) } }
    func backward(_ dy: Bounded, u: Double) -> Bounded { layers.reversed().reduce(dy) { $1.backward($0, u: u) } }
    var grads: [Bounded] { layers.flatMap { $0.grads } }
    var signature: [Int] { layers.flatMap { $0.signature } }
    /// (layer, parameter) for every parameter tensor, in `grads` order.
    var paramSlots: [(RefLayer, Int)] { layers.flatMap { l in (0..<l.params.count).map { (l, $0) } } }
}

// MARK: checks

/// One step of a production chain, run in float32: a layer, or the model's input normalisation
/// or tanh head. `reference` builds its float64 reference after the step's forward has run (a
/// dropout layer's mask is drawn there).
struct ProductionStep {
    let name: String
    let forward: (Tensor) -> Tensor
    /// ∂L/∂input for ∂L/∂output; accumulates into `params`' gradients.
    let backward: (Tensor) -> Tensor
    let params: [(String, Param)]
    let reference: () -> RefLayer

    init(name: String, params: [(String, Param)] = [], reference: @escaping () -> RefLayer,
         forward: @escaping (Tensor) -> Tensor, backward: @escaping (Tensor) -> Tensor) {
        self.name = name; self.params = params; self.reference = reference
        self.forward = forward; self.backward = backward
    }

    /// A production layer (parameter gradients on).
    init(_ layer: Layer, name: String, mode: Mode) {
        self.init(name: name, params: layer.params.map { ("\(name).\($0.name)", $0) },
                  reference: { RefChain.layer(layer, mode: mode) },
                  forward: { layer.forward($0, mode: mode) }, backward: { layer.backward($0, paramGrads: true) })
    }
}

/// Result of `assertChainMatchesReference`: the production output, input gradient, every step's
/// reference (holding its local gradients and their bounds) and the worst |error|/bound per kind.
struct ChainCheck {
    var y: Tensor
    var dx: Tensor
    var references: [RefLayer] = []
    var reports: [String: BoundReport] = [:]
}

/// Runs `steps` forward on x and backward on dy in float32 and checks every step *locally* against
/// its float64 reference, fed the very float32 values the step received (its input forwards, its
/// output gradient backwards): each output, input gradient and parameter gradient must lie within
/// the bound of that one step's rounding (γ_n·Σ|terms|). The reference then sees the same ReLU
/// masks and pool argmaxes as the production, and the bounds do not compound over depth (a
/// first-order bound propagated through twenty wide layers grows like Π‖W‖₁ and says nothing).
/// That the steps compose into the right gradient is checked on the reference in float64
/// (`checkReferenceByFiniteDifferences`). Parameter gradients must be zero before the call.
@discardableResult
func assertChainMatchesReference(_ steps: [ProductionStep], x: Tensor, dy: Tensor, label: String,
                                 file: StaticString = #filePath, line: UInt = #line) -> ChainCheck {
    let u = Rounding.float32
    var a = x
    var refs: [RefLayer] = []
    var reports: [String: BoundReport] = [:]
    func record(_ key: String, _ r: BoundReport) {
        if reports[key] == nil || r.worstRatio > reports[key]!.worstRatio { reports[key] = r }
    }
    for (i, step) in steps.enumerated() {
        let out = step.forward(a)
        let ref = step.reference()
        let r = ref.forward(Bounded(exact: a), u: u)
        XCTAssertEqual(out.shape, r.shape, "\(label) step \(i) (\(step.name)) output shape", file: file, line: line)
        record("output", assertWithinBounds(out.data, r.v, r.e, "\(label) step \(i) (\(step.name)) output",
                                            file: file, line: line))
        refs.append(ref)
        a = out
    }
    let y = a
    var g = dy
    for (i, step) in steps.enumerated().reversed() {
        let gin = step.backward(g)
        let r = refs[i].backward(Bounded(exact: g), u: u)
        XCTAssertEqual(gin.shape, r.shape, "\(label) step \(i) (\(step.name)) ∂input shape", file: file, line: line)
        record("input", assertWithinBounds(gin.data, r.v, r.e, "\(label) step \(i) (\(step.name)) ∂input",
                                           file: file, line: line))
        let rg = refs[i].grads
        XCTAssertEqual(rg.count, step.params.count, "\(label) \(step.name): parameter count", file: file, line: line)
        for ((name, p), b) in zip(step.params, rg) {
            XCTAssertEqual(p.grad.shape, b.shape, "\(label) ∂\(name) shape", file: file, line: line)
            record(name, assertWithinBounds(p.grad.data, b.v, b.e, "\(label) ∂\(name)", file: file, line: line))
        }
        g = gin
    }
    // One line per check in the test log: how much of its bounds the CPU at hand used.
    print("bounds \(label): " + reports.keys.sorted().map { "\($0) \(String(format: "%.2g", reports[$0]!.worstRatio))" }
        .joined(separator: ", "))
    return ChainCheck(y: y, dx: g, references: refs, reports: reports)
}

/// Checks the reference's own gradients of f = ⟨chain(x), dy⟩ against central differences in
/// float64, at `probes` seeded entries of the input and of every parameter tensor.
///
/// A probe at step h compares D(h) = (f(θ + h) − f(θ − h)) / (2h) with the analytic value. It is
/// skipped (and counted) when θ ± h or θ ± 2h changes a ReLU mask or pool argmax (a kink within
/// the stencil). Tolerance, all of it derived: |D(h) − D(2h)| (three times the leading truncation
/// error c·h² of D(h), since D(2h) − D(h) ≈ 3c·h²) + the float64 rounding of the four f values
/// divided by 2h (bounded by the chain at u = 2⁻⁵³) + the float64 bound of the analytic value.
/// At least half of each tensor's probes must be valid, so the check cannot pass by skipping.
func checkReferenceByFiniteDifferences(_ ref: RefChain, x: Tensor, dy: Tensor, probes: Int = 12,
                                       seed: UInt64, label: String,
                                       file: StaticString = #filePath, line: UInt = #line) {
    let u64 = Rounding.float64
    var input = Bounded(exact: x)
    let dyv = dy.data.map(Double.init)
    func f() -> (value: Double, error: Double, signature: [Int]) {
        let y = ref.forward(input, u: u64)
        var s = 0.0, mag = 0.0, err = 0.0
        for i in 0..<y.count { s += dyv[i] * y.v[i]; mag += abs(dyv[i] * y.v[i]); err += abs(dyv[i]) * y.e[i] }
        return (s, err + gamma(y.count, u: u64) * mag, ref.signature)
    }
    let base = f()
    let analyticInput = ref.backward(Bounded(exact: dy), u: u64)
    let analyticParams = ref.grads
    var rng = SeededRNG(seed: seed)

    // One probe of entry i through `set(value)`; nil when a kink lies within the stencil.
    func probe(_ name: String, _ i: Int, _ x0: Double, _ analytic: Double, _ analyticError: Double,
               _ set: (Double) -> Void) -> Bool {
        let h = 1e-4 * max(abs(x0), 0.1)
        var d: [Double] = [], noise = 0.0
        for step in [h, 2 * h] {
            let xp = x0 + step, xm = x0 - step
            set(xp); let fp = f()
            set(xm); let fm = f()
            set(x0)
            if fp.signature != base.signature || fm.signature != base.signature { return false }
            d.append((fp.value - fm.value) / (xp - xm))
            if step == h { noise = (fp.error + fm.error) / (xp - xm) }
        }
        let tol = abs(d[0] - d[1]) + noise + analyticError + 1e-300
        let err = abs(d[0] - analytic)
        XCTAssertLessThanOrEqual(err, tol, "\(label) reference ∂\(name)[\(i)]: analytic \(analytic) vs "
                                 + "central difference \(d[0]) (step \(h))", file: file, line: line)
        return true
    }

    func indices(_ count: Int) -> [Int] {
        count <= probes ? Array(0..<count) : Array(rng.permutation(count).prefix(probes))
    }
    var valid = 0, tried = 0
    for i in indices(x.count) {
        tried += 1
        if probe("x", i, input.v[i], analyticInput.v[i], analyticInput.e[i], { input.v[i] = $0 }) { valid += 1 }
    }
    XCTAssertGreaterThanOrEqual(2 * valid, tried, "\(label): \(tried - valid) of \(tried) input probes straddle a kink",
                                file: file, line: line)
    for (slot, (layer, pi)) in ref.paramSlots.enumerated() {
        valid = 0; tried = 0
        let g = analyticParams[slot]
        for i in indices(layer.params[pi].count) {
            tried += 1
            if probe("θ\(slot)", i, layer.params[pi][i], g.v[i], g.e[i], { layer.params[pi][i] = $0 }) { valid += 1 }
        }
        XCTAssertGreaterThanOrEqual(2 * valid, tried, "\(label): \(tried - valid) of \(tried) probes of parameter \(slot) straddle a kink",
                                    file: file, line: line)
    }
}
