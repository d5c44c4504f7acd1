import XCTest
import Foundation
import Dispatch
import NumericBounds
@testable import SAATCore

/// The batch-invariance promises of the model, the attacks, dropout and data-parallel training:
/// an image's outputs, input gradient and adversarial image are bitwise the same whatever images
/// are computed with it and wherever it sits among them (given its index in the whole set);
/// dropout masks drawn for a whole batch and kept for some rows equal those rows of a whole-batch
/// forward; and training split over two "processes" (two threads with a fake `CollectiveGroup`)
/// ends with bitwise equal weights on both, equal to one process's to rounding.
final class BatchInvarianceTests: XCTestCase {

    /// cnn-small with a hash layer scaled up so tanh is not flat, non-zero biases.
    private func model(bits: Int = 16, seed: UInt64 = 1, hashScale: Float = 6) throws -> HashingModel {
        let m = try HashingModel(backbone: .cnnSmall, bits: bits, seed: seed, mean: [0.4, 0.5, 0.6], std: [0.5, 0.25, 0.3])
        for p in m.namedParams where p.name == "hash_layer.weight" {
            for i in 0..<p.param.value.count { p.param.value.data[i] *= hashScale }
        }
        var rng = SeededRNG(seed: seed &+ 77)
        for p in m.params where p.name == "bias" {
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-0.05, 0.05) }
        }
        return m
    }

    // MARK: (a) model forward and input gradient

    func testModelOutputsAndInputGradientsDoNotDependOnTheBatch() throws {
        let m = try model()
        let n = 13, item = m.inputShape.reduce(1, *)
        let x = randomTensor([n] + m.inputShape, seed: 3, lo: 0, hi: 1)
        let g = randomTensor([n, m.bits], seed: 4)
        for mode in [Mode.eval, .train] {
            m.mode = mode
            let alpha: Float = 0.7
            let yFull = m.forward(x, alpha: alpha)
            let dxFull = m.backward(g, paramGrads: false)
            // Batches of 1, 5 and 13 images at several positions (4-row tiles and the single-row
            // tail of the linear kernels both take their turn at every image).
            var batches: [Range<Int>] = [0..<1, 1..<2, 6..<7, 12..<13, 0..<5, 1..<6, 3..<8, 8..<13, 0..<13]
            batches += [2..<9, 5..<12]
            for r in batches {
                let y = m.forward(x.slice(r.lowerBound, r.count), alpha: alpha)
                let dx = m.backward(g.slice(r.lowerBound, r.count), paramGrads: false)
                for (row, i) in r.enumerated() {
                    assertSameBits(y.data[(row * m.bits)..<((row + 1) * m.bits)],
                                   yFull.data[(i * m.bits)..<((i + 1) * m.bits)],
                                   "\(mode): output of image \(i) computed in images \(r)")
                    assertSameBits(dx.data[(row * item)..<((row + 1) * item)],
                                   dxFull.data[(i * item)..<((i + 1) * item)],
                                   "\(mode): input gradient of image \(i) computed in images \(r)")
                }
            }
        }
        // And for any number of kernel threads (forward and input gradient are documented to be
        // bitwise the same for every value).
        m.mode = .eval
        let y2 = m.forward(x, alpha: 0.7), dx2 = m.backward(g, paramGrads: false)
        let saved = ParallelFor.computeThreads
        defer { ParallelFor.setComputeThreads(saved) }
        for threads in [1, 3] {
            ParallelFor.setComputeThreads(threads)
            assertSameBits(m.forward(x, alpha: 0.7).data, y2.data, "forward with \(threads) threads")
            assertSameBits(m.backward(g, paramGrads: false).data, dx2.data, "input gradient with \(threads) threads")
        }
    }

    // MARK: (b) attacks

    /// Attacking 7 images in one call equals attacking images 0..<3 (firstIndex 0) and 3..<7
    /// (firstIndex 3) separately, bitwise, for the adversarial images and the guide codes. The
    /// brief's "pgd" and "saat" (both with a random start), and the other attacks whose inputs
    /// are cheap to make (THA's prototype training is left out).
    func testPreparedAttacksInPiecesEqualOneCall() throws {
        let m = try strongHashModel()
        let n = 7, bitsK = m.bits, c = 5, item = m.inputShape.reduce(1, *)
        let x = randomTensor([n] + m.inputShape, seed: 21, lo: 0, hi: 1)
        let trainCodes = randomCodes(20, bitsK, seed: 22), trainLabels = randomLabels(20, c, seed: 23)
        let queryLabels = randomLabels(n, c, seed: 24)
        // Targeted attacks need target label vectors that occur in the database.
        let targets = Tensor(shape: [n, c], data: (0..<n).flatMap { i in Array(trainLabels.data[((i * 3 % 20) * c)..<((i * 3 % 20 + 1) * c)]) })
        let training = AttackInputs(["train_codes": trainCodes, "train_labels": trainLabels])
        let database = AttackInputs(["db_codes": trainCodes, "db_labels": trainLabels])
        // (name, inputs, labels, extra settings)
        let cases: [(String, AttackInputs, Tensor?, [String: Value])] = [
            ("pgd", AttackInputs([:]), nil, [:]),
            ("saat", training, queryLabels, [:]),
            ("saat", training, targets, ["targeted": .bool(true)]),
            ("center", training, queryLabels, ["random_start": .bool(true)]),
            ("hag", AttackInputs([:]), nil, [:]),
            ("sdha", training, queryLabels, [:]),
            ("dhta", database, targets, ["n_t": .int(3)]),
            ("p2p", database, targets, [:]),
        ]
        for (name, inputs, labels, extra) in cases {
            let spec = try Registry.attack(name)
            var given = extra.merging(["steps": .int(4)]) { a, _ in a }
            if spec.schema.parameter("seed") != nil { given["seed"] = .int(5) }
            given = given.filter { spec.schema.parameter($0.key) != nil }
            let attack = try spec.prepare(bitsK, inputs, try spec.schema.resolve(given), { false })
            let label = "\(name) \(given.keys.sorted())"
            var whole = [Float](repeating: .nan, count: n * item), pieces = whole
            var guideWhole = [Int8](repeating: 9, count: n * bitsK), guidePieces = guideWhole
            try x.data.withUnsafeBufferPointer { xp in
                let base = xp.baseAddress!
                try attack.run(model: m, images: base, n: n, labels: labels, out: &whole, guide: &guideWhole)
                try pieces.withUnsafeMutableBufferPointer { op in
                    try guidePieces.withUnsafeMutableBufferPointer { gp in
                        for r in [0..<3, 3..<7] {
                            try attack.run(model: m, images: base + r.lowerBound * item, n: r.count,
                                           labels: labels?.slice(r.lowerBound, r.count),
                                           out: op.baseAddress! + r.lowerBound * item, guide: gp.baseAddress! + r.lowerBound * bitsK,
                                           firstIndex: r.lowerBound)
                        }
                    }
                }
            }
            XCTAssertFalse(whole.contains { $0.isNaN }, "\(label): every pixel written")
            XCTAssertNotEqual(whole, x.data, "\(label): the attack moved the images")
            for i in 0..<n {
                assertSameBits(pieces[(i * item)..<((i + 1) * item)], whole[(i * item)..<((i + 1) * item)],
                               "\(label): image \(i) attacked in pieces (firstIndex) vs in one call")
            }
            XCTAssertEqual(guidePieces, guideWhole, "\(label): guide codes")
            // A wrong firstIndex changes the random start (so the test above is not vacuous).
            if name == "pgd" {
                var shifted = [Float](repeating: .nan, count: 4 * item)
                try x.data.withUnsafeBufferPointer { xp in
                    try attack.run(model: m, images: xp.baseAddress! + 3 * item, n: 4, labels: nil, out: &shifted, firstIndex: 0)
                }
                XCTAssertNotEqual(shifted, Array(whole[(3 * item)...]), "pgd: firstIndex matters")
            }
        }
    }

    /// `AttackEngine.run` with chunks of 1, 2, 3 and 7 images (and the default chunk) gives the
    /// same images, for every image update (sign, SGD, Adam with the MSE term), random start on.
    func testAttackEngineChunksGiveIdenticalImages() throws {
        let m = try strongHashModel()
        let n = 7, item = m.inputShape.reduce(1, *)
        let x = randomTensor([n] + m.inputShape, seed: 31, lo: 0, hi: 1)
        let codes = randomCodes(n, m.bits, seed: 32)
        let updates: [(ImageUpdate, Float)] = [(.sign(step: 2 / 255), 0), (.sgd(lr: 100, momentum: 0.9), 1),
                                               (.adam(lr: 0.01, beta1: 0.9, beta2: 0.999), 1)]
        for (update, mse) in updates {
            let cfg = AttackConfig(eps: 8 / 255, steps: 3, update: update, randomStart: true, alphaSchedule: true,
                                   mseWeight: mse, seed: 9)
            var results: [(Int?, [Float])] = []
            for chunk in [7, 2, 1, 3, nil] as [Int?] {
                var out = [Float](repeating: .nan, count: n * item)
                try x.data.withUnsafeBufferPointer { xp in
                    try AttackEngine.run(model: m, images: xp.baseAddress!, n: n,
                                         objective: CodeProductObjective(codes: codes, .away), config: cfg,
                                         out: &out, chunk: chunk)
                }
                results.append((chunk, out))
            }
            XCTAssertNotEqual(results[0].1, x.data, "\(update): the attack moved the images")
            for (chunk, out) in results.dropFirst() {
                assertSameBits(out, results[0].1, "\(update): chunk \(chunk.map(String.init) ?? "default") vs chunk 7")
            }
        }
    }

    // MARK: (c) dropout row selection

    func testDropoutRowSelectionKeepsThoseRowsOfTheWholeBatchMasks() {
        for shape in [[6, 37], [6, 2, 3, 5]] {
            let whole = Dropout(p: 0.5, seed: 3)
            let part = Dropout(p: 0.5, seed: 3)
            XCTAssertEqual(whole.rng, part.rng)
            // Advance both by a forward first, so the selection starts from a used state.
            _ = whole.forward(Tensor(repeating: 1, shape: shape), mode: .train)
            _ = part.forward(Tensor(repeating: 1, shape: shape), mode: .train)
            let x = randomTensor(shape, seed: 41)
            let y = whole.forward(x, mode: .train)
            let f = x.count / 6
            part.rowSelection = DropoutRows(total: 6, rows: [1, 4])
            let x2 = Tensor(shape: [2] + Array(shape.dropFirst()),
                            data: Array(x.data[(1 * f)..<(2 * f)]) + Array(x.data[(4 * f)..<(5 * f)]))
            let y2 = part.forward(x2, mode: .train)
            let mask = whole.mask!, mask2 = part.mask!
            XCTAssertEqual(mask2.shape, x2.shape)
            XCTAssertEqual(Array(mask2.data[0..<f]), Array(mask.data[(1 * f)..<(2 * f)]), "\(shape): mask of row 1")
            XCTAssertEqual(Array(mask2.data[f..<(2 * f)]), Array(mask.data[(4 * f)..<(5 * f)]), "\(shape): mask of row 4")
            assertSameBits(y2.data[0..<f], y.data[(1 * f)..<(2 * f)], "\(shape): output row 1")
            assertSameBits(y2.data[f..<(2 * f)], y.data[(4 * f)..<(5 * f)], "\(shape): output row 4")
            // The masks are not trivial, and both generators moved past all six rows.
            XCTAssertTrue(mask.data.contains(0) && mask.data.contains(2), "\(shape): mask has kept and dropped entries")
            XCTAssertEqual(part.rng, whole.rng, "\(shape): RNG state after the forward")
            // Backward uses the selected rows' mask.
            let dy = randomTensor(x2.shape, seed: 42)
            XCTAssertEqual(part.backward(dy, paramGrads: false).data, zip(dy.data, mask2.data).map { $0 * $1 })
            // Eval mode draws nothing.
            let before = part.rng
            XCTAssertEqual(part.forward(x2, mode: .eval), x2)
            XCTAssertEqual(part.rng, before)
        }
    }

    // MARK: (d) data-parallel training over two threads

    /// Shared memory of a fake two-process group: a reusable barrier and one posted pointer per rank.
    final class Exchange: @unchecked Sendable {
        let size: Int
        let cond = NSCondition()
        var arrived = 0, generation = 0
        var broken = false
        var posted: [UnsafePointer<Float>?]
        init(size: Int) { self.size = size; posted = Array(repeating: nil, count: size) }

        struct Timeout: Error {}

        /// Waits until every rank has arrived (60 s at most: a rank that died must not hang the test).
        func barrier() throws {
            cond.lock()
            defer { cond.unlock() }
            if broken { throw Timeout() }
            let gen = generation
            arrived += 1
            if arrived == size {
                arrived = 0; generation += 1
                cond.broadcast()
                return
            }
            let deadline = Date(timeIntervalSinceNow: 60)
            while generation == gen && !broken {
                if !cond.wait(until: deadline) { broken = true; cond.broadcast(); throw Timeout() }
            }
            if broken { throw Timeout() }
        }

        /// Lets the other ranks out of their barriers (a rank failed).
        func breakBarrier() {
            cond.lock(); broken = true; cond.broadcast(); cond.unlock()
        }

        func post(_ rank: Int, _ p: UnsafePointer<Float>) {
            cond.lock(); posted[rank] = p; cond.unlock()
        }

        func pointer(_ rank: Int) -> UnsafePointer<Float> {
            cond.lock(); defer { cond.unlock() }
            return posted[rank]!
        }
    }

    final class ThreadGroup: CollectiveGroup {
        let rank: Int
        let exchange: Exchange
        var size: Int { exchange.size }
        var collectives = 0
        init(rank: Int, exchange: Exchange) { self.rank = rank; self.exchange = exchange }

        /// Every rank sums the posted buffers in rank order (the same float result everywhere),
        /// into a private copy first: the others are still reading this rank's buffer.
        func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
            collectives += 1
            exchange.post(rank, UnsafePointer(buffer))
            try exchange.barrier()
            let ptrs = (0..<size).map(exchange.pointer)
            var sum = [Float](repeating: 0, count: count)
            for i in 0..<count {
                var s = ptrs[0][i]
                for r in 1..<size { s += ptrs[r][i] }
                sum[i] = s
            }
            try exchange.barrier()
            sum.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: count) }
        }

        func allgather(_ local: UnsafePointer<Float>, counts: [Int], into out: UnsafeMutablePointer<Float>) throws {
            collectives += 1
            precondition(counts.count == size)
            exchange.post(rank, local)
            try exchange.barrier()
            var at = 0
            for r in 0..<size {
                (out + at).update(from: exchange.pointer(r), count: counts[r])
                at += counts[r]
            }
            try exchange.barrier()
        }
    }

    /// Trains a fresh cnn-small on 11 images (batches of 6 and 5: an uneven split of the second
    /// batch over two ranks) for 2 epochs; `group` nil runs one process. Returns the parameters and
    /// the loss history.
    private func train(method: String, images: Tensor, labels: Tensor, extra: [String: Value],
                       group: CollectiveGroup?) throws -> (weights: [Tensor], history: [Double]) {
        let m = try HashingModel(backbone: .cnnSmall, bits: 8, seed: 3)
        let spec = try Registry.training(method)
        let settings = try spec.schema.resolve(["epochs": .int(2), "batch_size": .int(6), "seed": .int(7)]
                                                .merging(extra) { a, _ in a })
        let history: [Double] = try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: images.batch, itemShape: Array(images.shape.dropFirst()))
            let loop = try spec.makeLoop(model: m, images: src, labels: labels, settings: settings)
            loop.parallel = DataParallel(group: group)
            // As the bridge does (HashingModel.withLock): OpenBLAS pinned to one thread, so the two
            // ranks' sgemm calls run in their own threads.
            return try BLAS.singleThreaded { try loop.run() }
        }
        return (m.params.map(\.value), history)
    }

    private func checkDataParallelTraining(_ method: String, extra: [String: Value] = [:],
                                           file: StaticString = #filePath, line: UInt = #line) throws {
        let n = 11
        let images = randomTensor([n, 3, 32, 32], seed: 51, lo: 0, hi: 1)
        let labels = randomLabels(n, 4, seed: 52)
        let single = try train(method: method, images: images, labels: labels, extra: extra, group: nil)

        let exchange = Exchange(size: 2)
        let groups = (0..<2).map { ThreadGroup(rank: $0, exchange: exchange) }
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var value: [Result<(weights: [Tensor], history: [Double]), Error>?] = [nil, nil]
        }
        let results = Results()
        let done = DispatchSemaphore(value: 0)
        for r in 0..<2 {
            // One Thread per rank (never a pool that could run them one after the other).
            let t = Thread {
                let res = Result { try self.train(method: method, images: images, labels: labels, extra: extra, group: groups[r]) }
                if case .failure = res { exchange.breakBarrier() }
                results.lock.lock(); results.value[r] = res; results.lock.unlock()
                done.signal()
            }
            t.stackSize = 16 << 20
            t.start()
        }
        for _ in 0..<2 {
            if done.wait(timeout: .now() + 300) == .timedOut {
                exchange.breakBarrier()
                return XCTFail("\(method): a rank did not finish", file: file, line: line)
            }
        }
        var ranks: [(weights: [Tensor], history: [Double])] = []
        for r in 0..<2 {
            results.lock.lock()
            let res = results.value[r]!
            results.lock.unlock()
            switch res {
            case let .success(v): ranks.append(v)
            case let .failure(e): return XCTFail("\(method): rank \(r) failed: \(e)", file: file, line: line)
            }
        }
        XCTAssertGreaterThan(groups[0].collectives, 0, "\(method): the ranks communicated", file: file, line: line)
        XCTAssertEqual(groups[0].collectives, groups[1].collectives, file: file, line: line)
        // The two ranks: bitwise the same weights and losses.
        XCTAssertEqual(ranks[0].history.map(\.bitPattern), ranks[1].history.map(\.bitPattern),
                       "\(method): loss history of rank 0 vs rank 1", file: file, line: line)
        for (i, (a, b)) in zip(ranks[0].weights, ranks[1].weights).enumerated() {
            assertSameBits(a.data, b.data, "\(method): parameter \(i) of rank 0 vs rank 1", file: file, line: line)
        }
        // Against one process: equal to rounding (only the order of the sums over the batch in the
        // parameter gradients differs), and training moved the weights.
        let initial = try HashingModel(backbone: .cnnSmall, bits: 8, seed: 3).params.map(\.value)
        var moved = false
        for (i, (a, b)) in zip(ranks[0].weights, single.weights).enumerated() {
            var diff = 0.0, norm = 0.0, step = 0.0
            for j in 0..<a.count {
                let d = Double(a.data[j]) - Double(b.data[j])
                diff += d * d; norm += Double(b.data[j]) * Double(b.data[j])
                let s = Double(b.data[j]) - Double(initial[i].data[j]); step += s * s
            }
            if step > 0 { moved = true }
            let rel = norm > 0 ? (diff / norm).squareRoot() : diff.squareRoot()
            XCTAssertLessThanOrEqual(rel, 1e-5, "\(method): parameter \(i) (\(a.shape)), two ranks vs one process: relative difference \(rel)",
                                     file: file, line: line)
        }
        XCTAssertTrue(moved, "\(method): training changed the weights", file: file, line: line)
        XCTAssertEqual(single.history.count, ranks[0].history.count, file: file, line: line)
        for (a, b) in zip(ranks[0].history, single.history) {
            XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "\(method): loss history", file: file, line: line)
        }
    }

    func testDataParallelHashingTrainingMatchesOneProcess() throws {
        try checkDataParallelTraining("hashing", extra: ["lr": .float(0.05)])
    }

    /// SAAT's adversarial training: the inner attack per rank with per-image random starts.
    func testDataParallelSAATTrainingMatchesOneProcess() throws {
        try checkDataParallelTraining("saat", extra: ["steps": .int(2)])
    }

    /// ATRDH: the loss memory starts from the outputs each rank gathers, the prototype net and the
    /// target labels are computed alike on every rank.
    func testDataParallelATRDHTrainingMatchesOneProcess() throws {
        try checkDataParallelTraining("atrdh", extra: ["steps": .int(2), "loss": .string("dph"), "lr": .float(1e-3)])
    }
}
