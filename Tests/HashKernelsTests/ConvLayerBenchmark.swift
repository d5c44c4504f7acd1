import XCTest
import Foundation
@testable import HashKernels

/// Per-layer timing of `Conv2D` forward, input gradient (∂x) and weight gradient (∂W + ∂b) at
/// the paper backbones' shapes, against OpenBLAS sgemm 2048³ on the same machine (a subset of
/// the per-layer rows of `benchmarks/run_all.py`, `PAPER_CONVS`). Opt-in: runs only when SAAT_BENCH_CONV is set (e.g.
/// `SAAT_BENCH_CONV=1 swift test -c release --skip-build --filter ConvLayerBenchmark`);
/// SAAT_BENCH_CONV_LAYERS (comma-separated name prefixes) selects layers, SAAT_BENCH_REPEATS the
/// repeats (default 5). Each kernel is timed alternating with sgemm in the same process; the
/// minimum over the repeats is reported (the machine is shared: minima are the least noisy).
/// FLOPs are direct-convolution FLOPs, 2·N·O·C·k²·OH·OW, for each of the three passes.
final class ConvLayerBenchmark: XCTestCase {
    /// (name, C, O, H, k, stride, padding), as benchmarks/run_all.py's PAPER_CONVS.
    static let layers: [(String, Int, Int, Int, Int, Int, Int)] = [
        ("alexnet c1 3->64 11x11/4 @224", 3, 64, 224, 11, 4, 2),
        ("vgg11 c1 3->64 3x3 @224", 3, 64, 224, 3, 1, 1),
        ("alexnet c2 64->192 5x5 @27", 64, 192, 27, 5, 1, 2),
        ("vgg11 c2 64->128 3x3 @112", 64, 128, 112, 3, 1, 1),
    ]

    private func seconds(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }

    func testConvLayerThroughput() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["SAAT_BENCH_CONV"] != nil else { throw XCTSkip("set SAAT_BENCH_CONV=1 to run") }
        let repeats = Int(env["SAAT_BENCH_REPEATS"] ?? "") ?? 5
        let batch = Int(env["SAAT_BENCH_BATCH"] ?? "") ?? 4
        let only = env["SAAT_BENCH_CONV_LAYERS"].map { $0.split(separator: ",").map(String.init) }
        var rng = SeededRNG(seed: 1)
        let n = 2048
        let a = (0..<(n * n)).map { _ in rng.uniform(-1, 1) }
        var c = [Float](repeating: 0, count: n * n)
        let gemm = { BLAS.sgemm(m: n, n: n, k: n, a: a, lda: n, b: a, ldb: n, c: &c, ldc: n) }
        // SAAT_BENCH_THREADS: the kernels' threads and OpenBLAS's (default: every core, as
        // saat.kernels.sgemm and the layers use them).
        let threads = Int(env["SAAT_BENCH_THREADS"] ?? "") ?? ParallelFor.onlineCPUs
        ParallelFor.setComputeThreads(threads)
        defer { ParallelFor.setComputeThreads(0) }
        BLAS.setThreads(threads)
        gemm()
        var gemmBest = Double.infinity
        print("threads \(ParallelFor.computeThreads), OpenBLAS threads \(BLAS.threads), OpenBLAS \(BLAS.coreName), kernels built for \(BuildInfo.targetCPU), batch \(batch)")
        for (name, C, O, H, k, s, p) in Self.layers {
            if let only, !only.contains(where: { name.hasPrefix($0) }) { continue }
            let g = Conv2DGeometry(batch: batch, inChannels: C, height: H, width: H, outChannels: O,
                                   kernel: k, stride: s, padding: p)
            let x = (0..<g.inputCount).map { _ in rng.uniform(-1, 1) }
            let w = (0..<g.weightCount).map { _ in rng.uniform(-1, 1) }
            let b = (0..<O).map { _ in rng.uniform(-1, 1) }
            let dy = (0..<g.outputCount).map { _ in rng.uniform(-1, 1) }
            var y = [Float](repeating: 0, count: g.outputCount)
            var dx = [Float](repeating: 0, count: g.inputCount)
            var dw = [Float](repeating: 0, count: g.weightCount), db = [Float](repeating: 0, count: O)
            var ws = [Float](repeating: 0, count: Conv2D.workspaceCount(g))
            let flop = 2.0 * Double(g.batch * O * g.patchSize * g.outPlane)
            let passes: [(String, () -> Void)] = [
                ("fwd", { Conv2D.forward(x: x, weight: w, bias: b, y: &y, geometry: g, workspace: &ws) }),
                ("dx", { Conv2D.backward(x: nil, weight: w, dy: dy, geometry: g, dx: &dx, dWeight: nil, dBias: nil,
                                         workspace: &ws) }),
                ("dW", { Conv2D.backward(x: x, weight: w, dy: dy, geometry: g, dx: nil, dWeight: &dw, dBias: &db,
                                         workspace: &ws) }),
            ]
            for (pass, body) in passes {
                body()
                var best = Double.infinity
                for _ in 0..<repeats {
                    best = min(best, seconds(body))
                    gemmBest = min(gemmBest, seconds(gemm))
                }
                let gf = flop / best / 1e9, gg = 2.0 * Double(n * n * n) / gemmBest / 1e9
                print(String(format: "CONVBENCH %-32@ %-4@ %8.3f ms %7.1f GFLOP/s  sgemm2048 %6.1f GFLOP/s  %5.1f %%",
                             name as NSString, pass as NSString, best * 1e3, gf, gg, 100 * gf / gg))
            }
        }
    }
}
