import Foundation
import HashKernels

/// Logistic sigmoid, y = 1/(1 + e^(−x)) elementwise (any shape), as `torch.nn.Sigmoid`.
/// Backward: ∂x = ∂y·s·(1 − s), s = σ(x), evaluated as ∂y·t/(1 + t)² with t = e^(−|x|) (the
/// same value without the cancellation of 1 − s for large x).
///
/// Method: each value is evaluated in float64 from the float32 input and rounded once, so y and
/// ∂x are within one float32 rounding (plus a float64-sized error) of the exact values; the
/// backward recomputes s from the cached input (not from the rounded output) for the same
/// reason. Elementwise over the kernels' threads: the same values for any split.
public final class Sigmoid: Layer {
    private var input: Tensor?

    public init() {}

    public func outputShape(_ input: [Int]) -> [Int] { input }

    @inline(__always) static func logistic(_ x: Float) -> Double { 1 / (1 + Foundation.exp(-Double(x))) }

    /// σ'(x) = σ(x)·(1 − σ(x)) = t/(1 + t)², t = e^(−|x|) (σ' is even).
    @inline(__always) static func slope(_ x: Float) -> Double {
        let t = Foundation.exp(-abs(Double(x)))
        return t / ((1 + t) * (1 + t))
    }

    public func forward(_ x: Tensor, mode: Mode) -> Tensor {
        let y = Tensor.elementwise(x, x) { xb, _, yb, n in
            Elementwise.parallel(count: n, minParallel: 1 << 14) { r in
                for i in r { yb[i] = Float(Sigmoid.logistic(xb[i])) }
            }
        }
        input = x
        return y
    }

    public func backward(_ dy: Tensor, paramGrads: Bool) -> Tensor {
        guard let x = input else { preconditionFailure("Sigmoid.backward before forward") }
        precondition(dy.shape == x.shape, "Sigmoid.backward: expected dy \(x.shape), got \(dy.shape)")
        return Tensor.elementwise(x, dy) { xb, db, out, n in
            Elementwise.parallel(count: n, minParallel: 1 << 14) { r in
                for i in r {
                    out[i] = Float(Double(db[i]) * Sigmoid.slope(xb[i]))
                }
            }
        }
    }
}
