import XCTest
import Foundation
import Dispatch
import HashKernels
@testable import SAATCore

/// The adversarial-training recipes against the official code's order of operations and start
/// state (ATRDH: SAAT model/defense_model/atrdh.py @3743e69).
final class DefenceRecipeTests: XCTestCase {
    let n = 10
    lazy var images = randomTensor([n, 3, 32, 32], seed: 21, lo: 0, hi: 1)
    lazy var labels = randomLabels(n, 4, seed: 22)

    /// cnn-small with its hash layer scaled up so the outputs are spread over (−1, 1).
    func model() throws -> HashingModel {
        let m = try HashingModel(backbone: .cnnSmall, bits: 8, seed: 23)
        for p in m.namedParams where p.name == "hash_layer.weight" {
            for i in 0..<p.param.value.count { p.param.value.data[i] *= 6 }
        }
        return m
    }

    /// F(x) of the training images in eval mode (the mode left as it was).
    func evalOutputs(_ m: HashingModel, _ src: ImageSource) throws -> Tensor {
        let saved = m.mode
        m.mode = .eval
        defer { m.mode = saved }
        return try m.outputs(images: src.base, n: src.count)
    }

    func atrdhLoop(_ m: HashingModel, _ src: ImageSource, _ extra: [String: Value] = [:]) throws -> (TrainingLoop, ATRDHTraining) {
        let spec = try Registry.training("atrdh")
        let settings = try spec.schema.resolve(["loss": .string("dph"), "steps": .int(2), "batch_size": .int(4),
                                                "epochs": .int(1), "seed": .int(5)].merging(extra) { _, b in b })
        let loop = try spec.makeLoop(model: m, images: src, labels: labels, settings: settings)
        return (loop, loop.method as! ATRDHTraining)
    }

    /// atrdh.py keeps the clean model's hashing-loss memory (continuous outputs; `U_ben` of the
    /// adversarial term starts at zero, :77) and the codes P learns from are sign F(x) (:74). The
    /// old start (memory 0) fails the first check.
    func testATRDHStartsItsLossMemoryFromTheModelsOutputs() throws {
        let m = try model()
        try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: n, itemShape: [3, 32, 32])
            let clean = try evalOutputs(m, src)
            XCTAssertTrue(clean.data.contains { abs($0) > 0.1 }, "the outputs are not all near 0")
            let (loop, atrdh) = try atrdhLoop(m, src)
            try atrdh.prepare(images: src, parallel: .single, shouldStop: { false })
            // The same computation (an image's output does not depend on the others): same bits.
            XCTAssertEqual(atrdh.loss.memory.shape, [n, 8])
            XCTAssertEqual(atrdh.loss.memory.data.map(\.bitPattern), clean.data.map(\.bitPattern), "loss memory U = F(x)")
            XCTAssertEqual(atrdh.codes.data, clean.data.map { $0 >= 0 ? 1 : -1 }, "codes = sign F(x)")
            XCTAssertTrue(atrdh.benign.data.allSatisfy { $0 == 0 }, "U_ben starts at zero")

            // Through the loop: stopped after its first batch of 4, the 6 rows that batch did not
            // write still hold the starting model's outputs.
            XCTAssertThrowsError(try loop.run(progress: { _ in false })) { XCTAssertEqual($0 as? SAATError, .interrupted) }
            let mem = atrdh.loss.memory
            var kept = 0
            for i in 0..<n where (0..<8).allSatisfy({ mem.data[i * 8 + $0].bitPattern == clean.data[i * 8 + $0].bitPattern }) {
                kept += 1
            }
            // (≥: cnn-small's train-mode outputs may equal its eval-mode ones, dropout aside.)
            XCTAssertGreaterThanOrEqual(kept, n - 4, "rows not in the first batch keep F(x) of the starting model")
        }
    }

    /// atrdh.py:97-107: the attack's target is sign(P(y_t)) computed before P's Adam step of the
    /// batch. With a learning rate large enough that one step changes some of P's signs, encoding
    /// after the step (the old order) gives other codes.
    func testATRDHTargetsAreEncodedBeforeThePrototypeUpdate() throws {
        let m = try model()
        try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: n, itemShape: [3, 32, 32])
            let (_, atrdh) = try atrdhLoop(m, src, ["lr": .float(0.05)])
            try atrdh.prepare(images: src, parallel: .single, shouldStop: { false })
            let trainOn = atrdh.sampleLabels(6), targets = atrdh.sampleLabels(6)
            let before = atrdh.prototype.codes(targets)
            let got = atrdh.prototypeStep(trainOn: trainOn, targets: targets)
            let after = atrdh.prototype.codes(targets)
            XCTAssertNotEqual(before.data, after.data, "precondition: the step changes some target code")
            XCTAssertEqual(got.data, before.data, "targets encoded before the update")
        }
    }

    /// atrdh.py:69-72,104: P's learning rate follows the same multi-step schedule as the model's.
    func testATRDHPrototypeLearningRateFollowsTheSchedule() throws {
        let m = try model()
        try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: n, itemShape: [3, 32, 32])
            // 3 batches; milestone at ⌊0.5·3⌋ = 1: batch 0 at lr, batches 1 and 2 at lr·γ.
            let (loop, atrdh) = try atrdhLoop(m, src, ["lr": .float(0.004), "gamma": .float(0.5),
                                                       "milestones": .floats([0.5])])
            var seen: [Float] = []
            _ = try loop.run(progress: { _ in seen.append(atrdh.prototype.optimizer.learningRate); return true })
            XCTAssertEqual(seen, [0.004, 0.002, 0.002])
        }
    }

    /// CgAT trains with CgAT's hashing-loss constants (central_adv_train.py:103 builds its loss
    /// from CgAT's model/hashing_loss.py), clean training, SAAT and ATRDH with SAAT's.
    func testCgATTrainsWithItsOwnLossConstants() throws {
        try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: n, itemShape: [3, 32, 32])
            for (recipe, cgat) in [("hashing", false), ("saat", false), ("atrdh", false), ("cgat", true)] {
                let spec = try Registry.training(recipe)
                XCTAssertEqual(spec.lossConstants, cgat ? .cgat : .saat, recipe)
                for loss in ["dpsh", "hashnet", "csq"] {
                    let s = try spec.schema.resolve(["loss": .string(loss), "epochs": .int(1)])
                    // The loss the loop trains with.
                    let built = try spec.makeLoop(model: try model(), images: src, labels: labels, settings: s)
                    let l: HashingLoss
                    switch built.method {
                    case let g as GuidedAdversarialTraining: l = g.loss
                    case let a as ATRDHTraining: l = a.loss
                    case let h as HashTraining: l = h.loss
                    default: return XCTFail("\(recipe): unexpected method")
                    }
                    switch l {
                    case let d as DPSHLoss:
                        XCTAssertEqual(d.eta, cgat ? 0.001 : 50, recipe)
                        XCTAssertEqual(d.quantisationOverBits, cgat, recipe)
                    case let h as HashNetLoss:
                        XCTAssertEqual(h.alpha, cgat ? 0.1 : 10.0 / 8, recipe)
                        XCTAssertEqual(h.continuation, !cgat, recipe)
                    case let c as CSQLoss:
                        XCTAssertEqual(c.lambda, cgat ? 1e-4 : 0.05, recipe)
                    default: XCTFail("\(recipe): \(l.name)")
                    }
                }
            }
        }
    }

    /// Data-parallel start: two "processes" (threads) each encode half of the training set and
    /// gather it; both hold bitwise the memory and codes one process computes.
    func testATRDHStartIsTheSameOnEveryRank() throws {
        let m0 = try model()
        try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: n, itemShape: [3, 32, 32])
            let (_, single) = try atrdhLoop(m0, src)
            try single.prepare(images: src, parallel: .single, shouldStop: { false })
            let exchange = BatchInvarianceTests.Exchange(size: 2)
            let groups = (0..<2).map { BatchInvarianceTests.ThreadGroup(rank: $0, exchange: exchange) }
            let ranks = try runOnRanks(exchange) { r in
                let (_, a) = try self.atrdhLoop(try self.model(), src)
                try BLAS.singleThreaded { try a.prepare(images: src, parallel: DataParallel(group: groups[r]), shouldStop: { false }) }
                return (a.loss.memory, a.codes)
            }
            for r in 0..<2 {
                XCTAssertEqual(ranks[r].0.data.map(\.bitPattern), single.loss.memory.data.map(\.bitPattern), "rank \(r): memory")
                XCTAssertEqual(ranks[r].1.data, single.codes.data, "rank \(r): codes")
            }
            XCTAssertEqual(groups[0].collectives, 2, "one stop agreement and one gather")

            // A rank stopped while encoding: it throws `interrupted`, the other `peerStopped`,
            // and neither waits for the other.
            let stopExchange = BatchInvarianceTests.Exchange(size: 2)
            let stopGroups = (0..<2).map { BatchInvarianceTests.ThreadGroup(rank: $0, exchange: stopExchange) }
            let errors = try runOnRanks(stopExchange) { r -> SAATError? in
                let (_, a) = try self.atrdhLoop(try self.model(), src)
                do {
                    try a.prepare(images: src, parallel: DataParallel(group: stopGroups[r]), shouldStop: { r == 1 })
                    return nil
                } catch let e as SAATError { return e }
            }
            XCTAssertEqual(errors[0], .peerStopped(epoch: 0, batch: -1))
            XCTAssertEqual(errors[1], .interrupted)
        }
    }

    /// Runs `body(rank)` on two threads (one per rank) and returns their results in rank order.
    func runOnRanks<T>(_ exchange: BatchInvarianceTests.Exchange, _ body: @escaping (Int) throws -> T) throws -> [T] {
        let box = RankResults<T>()
        let done = DispatchSemaphore(value: 0)
        for r in 0..<2 {
            let t = Thread {
                let res = Result { try body(r) }
                if case .failure = res { exchange.breakBarrier() }
                box.lock.lock(); box.value[r] = res; box.lock.unlock()
                done.signal()
            }
            t.stackSize = 16 << 20
            t.start()
        }
        for _ in 0..<2 where done.wait(timeout: .now() + 120) == .timedOut {
            exchange.breakBarrier()
            throw SAATError.interrupted
        }
        return try (0..<2).map { r in
            box.lock.lock(); defer { box.lock.unlock() }
            return try box.value[r]!.get()
        }
    }
}

/// The two ranks' results, written by their threads.
final class RankResults<T>: @unchecked Sendable {
    let lock = NSLock()
    var value: [Result<T, Error>?] = [nil, nil]
}
