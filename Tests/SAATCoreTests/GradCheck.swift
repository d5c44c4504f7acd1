// Gradient checks of the layers and models, sound in float32 on every CPU.
//
// Finite differences of a float32 network are decided by its rounding noise, and that noise
// changes with the BLAS kernels OpenBLAS picks for the CPU (a check of cnn-small's conv2 weights
// passed on an AVX-512 machine and failed on an AVX2 one). So the production float32 results are
// never differenced. Instead (ReferenceNetwork.swift):
//
// 1. every production step (layer, normalisation, tanh head) is compared, value by value, with a
//    float64 reference of that step fed the same float32 inputs, within the bound of the step's
//    own float32 rounding (any summation order, any thread split): its output, its input gradient
//    and its parameter gradients;
// 2. the reference's gradients are compared with central differences of the reference in
//    float64, whose tolerance is derived from the step (truncation) and the float64 noise.
//
// A wrong backward pass fails (1): its error is of the size of the gradient, the bound ~1e-6 of
// its magnitude.
//
// API (internal to SAATCoreTests):
//   checkLayersAgainstReference(_ layers:, input:, mode:, seed:, label:, reference:, fdProbes:)
//       runs the production layers forward on x and backward on a seeded random dy (parameter
//       gradients from zero), then (1) and (2). Returns the bound reports by name.
//   randomTensor(_:seed:lo:hi:)   U(lo, hi) values from SeededRNG(seed), row-major.
import XCTest
import NumericBounds
@testable import SAATCore

func randomTensor(_ shape: [Int], seed: UInt64, lo: Float = -1, hi: Float = 1) -> Tensor {
    var rng = SeededRNG(seed: seed)
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { _ in rng.uniform(lo, hi) })
}

/// See the file comment. `reference` replaces the default reference of each layer
/// (`RefChain.layer`). `fdProbes` entries of the input and of each parameter are differenced.
@discardableResult
func checkLayersAgainstReference(_ layers: [Layer], input x: Tensor, mode: Mode = .train, seed: UInt64,
                                 label: String, reference: [RefLayer]? = nil, fdProbes: Int = 12,
                                 file: StaticString = #filePath, line: UInt = #line) -> [String: BoundReport] {
    let steps = layers.enumerated().map { i, l in
        reference.map { refs in
            ProductionStep(name: "\(i)", params: l.params.map { ("\(i).\($0.name)", $0) }, reference: { refs[i] },
                           forward: { l.forward($0, mode: mode) }, backward: { l.backward($0, paramGrads: true) })
        } ?? ProductionStep(l, name: "\(i)", mode: mode)
    }
    let outShape = [x.shape[0]] + layers.reduce(Array(x.shape.dropFirst())) { $1.outputShape($0) }
    let dy = randomTensor(outShape, seed: seed)
    for l in layers { for p in l.params { p.grad.zero() } }
    let check = assertChainMatchesReference(steps, x: x, dy: dy, label: label, file: file, line: line)
    checkReferenceByFiniteDifferences(RefChain(check.references), x: x, dy: dy, probes: fdProbes, seed: seed &+ 1,
                                      label: label, file: file, line: line)
    return check.reports
}
