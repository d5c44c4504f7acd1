import XCTest
@testable import SAATCore

/// A tiny hashing loss for loop tests: L = mean((u − t)²) towards fixed per-item targets, with a
/// memory and an epoch counter so the state round trip is exercised.
final class ToyLoss: MemoryBankLoss {
    var epochs = 0
    init(bits: Int, labels: Tensor) { super.init(name: "toy", bits: bits, trainLabels: labels) }
    override func value(u: Tensor, labels: Tensor, indices: [Int]) -> (loss: Double, grad: Tensor) {
        var g = Tensor(zeros: u.shape), l = 0.0
        for (r, i) in indices.enumerated() {
            for t in 0..<bits {
                let target: Float = (i + t) % 2 == 0 ? 0.5 : -0.5
                let d = u.data[r * bits + t] - target
                l += Double(d * d)
                g.data[r * bits + t] = 2 * d / Float(u.count)
            }
        }
        return (l / Double(u.count), g)
    }
    override func beginEpoch(_ epoch: Int) { epochs += 1 }
    override func saveState() -> [String: Tensor] { ["epochs": Tensor(shape: [1], data: [Float(epochs)])] }
    override func loadState(_ s: [String: Tensor]) throws { epochs = Int(s["epochs"]!.data[0]) }
}

final class TrainingLoopTests: XCTestCase {
    let n = 10
    lazy var images = randomTensor([n, 3, 32, 32], seed: 1, lo: 0, hi: 1)
    lazy var labels = randomLabels(n, 4, seed: 2)

    func run(resumeAt stop: Int?, method makeMethod: (HashingModel, Tensor) throws -> TrainingMethod) throws -> ([Double], [Float]) {
        let m = try HashingModel(backbone: .cnnSmall, bits: 8, seed: 3)
        let method = try makeMethod(m, labels)
        var saved: [String: Tensor]? = nil
        let history: [Double] = try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: n, itemShape: [3, 32, 32])
            let loop = try TrainingLoop(method: method, images: src, labels: labels, epochs: 3, batchSize: 4,
                                        learningRate: 0.05, milestones: [0.5], seed: 7)
            guard let stop else { return try loop.run() }
            var count = 0
            XCTAssertThrowsError(try loop.run(checkpointEvery: 1, checkpoint: { st in
                count += 1
                if count == stop { saved = st; return false }
                return true
            }))
            // A fresh model and method resume from the checkpoint.
            let m2 = try HashingModel(backbone: .cnnSmall, bits: 8, seed: 99)
            let loop2 = try TrainingLoop(method: try makeMethod(m2, labels), images: src, labels: labels, epochs: 3,
                                         batchSize: 4, learningRate: 0.05, milestones: [0.5], seed: 7)
            let h = try loop2.run(resume: saved)
            m.layers.indices.forEach { _ in }
            return h + [Double(m2.params.last!.value.data[0])]
        }
        return (history, m.params.last!.value.data)
    }

    func testResumeEqualsUninterruptedRun() throws {
        let make: (HashingModel, Tensor) throws -> TrainingMethod = { m, l in
            HashTraining(model: m, loss: ToyLoss(bits: 8, labels: l),
                         optimizer: try SGD(params: m.params, learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4))
        }
        let (full, w) = try run(resumeAt: nil, method: make)
        XCTAssertEqual(full.count, 3)
        XCTAssertLessThan(full[2], full[0], "loss goes down")
        for stop in [2, 3, 5] {   // mid-epoch, end of epoch (3 batches per epoch), next epoch
            let (resumed, _) = try run(resumeAt: stop, method: make)
            XCTAssertEqual(Array(resumed.prefix(3)), full, "history after resume at checkpoint \(stop)")
            XCTAssertEqual(Float(resumed[3]), w[0], "weights after resume at checkpoint \(stop)")
        }
    }

    /// With the toy loss, and with DPH, whose value reads the memory (ATRDH starts it from the
    /// model's outputs; a resume must restore it, not recompute it from the resumed weights).
    func testAdversarialMethodsResumeExactly() throws {
        for (kind, lossName) in [("saat", nil), ("cgat", nil), ("atrdh", nil), ("atrdh", "dph")] as [(String, String?)] {
            let make: (HashingModel, Tensor) throws -> TrainingMethod = { m, l in
                let spec = try Registry.training(kind)
                let loss: HashingLoss = try lossName.map { try makeHashingLoss(name: $0, bits: 8, trainLabels: l) }
                    ?? ToyLoss(bits: 8, labels: l)
                return try spec.make(m, loss, l, try spec.schema.resolve(["steps": .int(2), "seed": .int(1)]))
            }
            let (full, w) = try run(resumeAt: nil, method: make)
            XCTAssertTrue(full.allSatisfy { $0.isFinite }, kind)
            let (resumed, _) = try run(resumeAt: 4, method: make)
            XCTAssertEqual(Array(resumed.prefix(3)), full, kind)
            XCTAssertEqual(Float(resumed[3]), w[0], kind)
        }
    }

    func testLoopValidatesArguments() throws {
        let m = try HashingModel(backbone: .cnnSmall, bits: 8, seed: 3)
        let method = HashTraining(model: m, loss: ToyLoss(bits: 8, labels: labels),
                                  optimizer: try SGD(params: m.params, learningRate: 0.1))
        try images.data.withUnsafeBufferPointer { xp in
            let src = ImageSource(base: xp.baseAddress!, count: n, itemShape: [3, 32, 32])
            XCTAssertThrowsError(try TrainingLoop(method: method, images: src, labels: labels, epochs: 0, batchSize: 4, learningRate: 0.1, milestones: [], seed: 0))
            XCTAssertThrowsError(try TrainingLoop(method: method, images: src, labels: labels, epochs: 1, batchSize: 0, learningRate: 0.1, milestones: [], seed: 0))
            XCTAssertThrowsError(try TrainingLoop(method: method, images: src, labels: labels, epochs: 1, batchSize: 4, learningRate: 0.1, milestones: [1.5], seed: 0))
        }
    }
}
