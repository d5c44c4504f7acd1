import XCTest
import Foundation
@testable import HashKernels
@testable import SAATCore

/// Timing of `Linear`'s forward and input gradient (∂x, `paramGrads: false`, as attacks call it)
/// at the fully connected shapes of the three backbones, as the models run them (`RowProducts`
/// through `Linear`'s blocks and threads). Opt-in: runs only when SAAT_BENCH_LINEAR is set
/// (e.g. `SAAT_BENCH_LINEAR=1 swift test -c release --skip-build --filter LinearLayerBenchmark`);
/// SAAT_BENCH_REPEATS sets the repeats (default 7). The minimum over the repeats is reported (the
/// machine is shared: minima are the least noisy), with the pass's FLOPs 2·N·in·out and the rate
/// at which it reads W (each pass reads every weight once). For comparison, the same product by
/// OpenBLAS sgemm, timed alternating in the same process (its summation order depends on the
/// call's shape, which is why the layers do not use it).
final class LinearLayerBenchmark: XCTestCase {
    /// (name, batch, in, out).
    static let layers: [(String, Int, Int, Int)] = [
        ("cnn-small fc 4096->512", 64, 4096, 512),
        ("alexnet fc6 9216->4096", 16, 9216, 4096),
        ("alexnet fc7 4096->4096", 16, 4096, 4096),
        ("vgg11 fc0 25088->4096", 16, 25088, 4096),
    ]

    private func seconds(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }

    func testLinearLayerThroughput() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["SAAT_BENCH_LINEAR"] != nil else { throw XCTSkip("set SAAT_BENCH_LINEAR=1 to run") }
        let repeats = Int(env["SAAT_BENCH_REPEATS"] ?? "") ?? 7
        var rng = SeededRNG(seed: 1)
        print("threads \(ParallelFor.computeThreads), OpenBLAS \(BLAS.coreName), kernels built for \(BuildInfo.targetCPU)")
        for (name, n, inF, outF) in Self.layers {
            let layer = Linear(inFeatures: inF, outFeatures: outF, rng: &rng)
            let x = Tensor(shape: [n, inF], data: (0..<(n * inF)).map { _ in rng.uniform(-1, 1) })
            let dy = Tensor(shape: [n, outF], data: (0..<(n * outF)).map { _ in rng.uniform(-1, 1) })
            var c = [Float](repeating: 0, count: n * outF)
            let w = layer.weight.value.data
            let flop = 2.0 * Double(n * inF * outF), bytes = 4.0 * Double(inF * outF)
            let passes: [(String, () -> Void)] = [
                ("fwd", { _ = layer.forward(x, mode: .eval) }),
                ("dx", { _ = layer.backward(dy, paramGrads: false) }),
                ("sgemm", {
                    x.data.withUnsafeBufferPointer { xp in
                        BLAS.sgemm(transB: true, m: n, n: outF, k: inF, a: xp.baseAddress!, lda: inF, b: w, ldb: inF,
                                   c: &c, ldc: outF)
                    }
                }),
            ]
            for (_, body) in passes { body() }   // warm-up; the forward also caches x for backward
            var best = [Double](repeating: .infinity, count: passes.count)
            for _ in 0..<repeats {
                for (i, (_, body)) in passes.enumerated() { best[i] = min(best[i], seconds(body)) }
            }
            for (i, (pass, _)) in passes.enumerated() {
                print(String(format: "LINEARBENCH %-24@ %-5@ %8.3f ms %7.1f GFLOP/s %6.1f GB/s of W",
                             name as NSString, pass as NSString, best[i] * 1e3, flop / best[i] / 1e9,
                             bytes / best[i] / 1e9))
            }
        }
    }
}
