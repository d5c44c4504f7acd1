import CPython
import SAATCore

// saat._core entry points for SAATCore/Training (saat.training in Python).

/// Shared plumbing of every training entry point: images/labels buffers, the loop, callbacks,
/// checkpoints and resume. `makeMethod` builds the method once the buffers are checked.
func runTraining(_ a: Args, _ m: HashingModel,
                 defaults: (lr: Double, milestones: [Double]),
                 makeMethod: (ImageSource, Tensor) throws -> TrainingMethod) throws -> PyObj? {
    let epochs = try a.int("epochs")
    let batchSize = try a.int("batch_size")
    let lr = try a.finite("lr", defaults.lr)
    let gamma = try a.finite("gamma", 0.1)
    let seed = try a.int("seed", 0)
    try require(seed >= 0, "seed", "an int ≥ 0, got \(seed)")
    let every = try a.int("checkpoint_every", 0)
    try require(every >= 0, "checkpoint_every", "an int ≥ 0 (0 = never), got \(every)")
    let milestones: [Double] = try a.obj("milestones").map { o in
        try f32(o, "milestones", shape: [nil]) { v in (0..<v.count).map { Double(v.ptr[$0]) } }
    } ?? defaults.milestones
    let progressFn = try a.callable("progress")
    let checkpointFn = try a.callable("checkpoint")
    let resume = try a.obj("resume").map { try tensorsFromPy($0, "resume") }
    let cb = PythonCallbacks(holding: m)

    return try imagesArg(a, "images", m) { x in
        let n = x.dim(0)
        try require(n >= 1, "images", "at least one image (got an empty batch)")
        try require(epochs >= 1, "epochs", "an int ≥ 1, got \(epochs)")
        try require(batchSize >= 1, "batch_size", "an int ≥ 1, got \(batchSize)")
        // A batch larger than the set is one batch of the whole set; clamping keeps the core's
        // batch arithmetic ((n + batch_size - 1) / batch_size) from overflowing.
        let batchSize = min(batchSize, n)
        let perEpoch = (n + batchSize - 1) / batchSize
        let (total, overflow) = epochs.multipliedReportingOverflow(by: perEpoch)
        try require(!overflow && total <= 1 << 53, "epochs",
                    "at most \((1 << 53) / perEpoch) epochs of \(perEpoch) batches, got \(epochs)")
        return try f32(a.required("labels"), "labels", shape: [n, nil]) { l in
            try requireFinite(l, "labels")
            try require(l.dim(1) >= 1, "labels", "at least one class column")
            for i in 0..<l.count where l.ptr[i] != 0 && l.ptr[i] != 1 {
                throw valueError("argument 'labels': expected multi-hot 0/1 values, found \(l.ptr[i]) at flat index \(i)")
            }
            let labels = Tensor(shape: l.shape, copying: l.constPtr)
            let source = ImageSource(base: x.constPtr, count: n, itemShape: m.inputShape)
            var history: [Double] = []
            var finalMemory: Tensor? = nil
            do {
                // weights restored from `resume` are checked by the model's loader ('state_dict')
                try renamingArguments(resume != nil ? ["state_dict": "resume"] : [:]) { try withoutGIL {
                    try m.withLock {
                        let method = try makeMethod(source, labels)
                        let loop = try TrainingLoop(method: method, images: source, labels: labels, epochs: epochs,
                                                    batchSize: batchSize, learningRate: Float(lr),
                                                    milestones: milestones, gamma: Float(gamma), seed: UInt64(seed))
                        history = try loop.run(
                            resume: resume, checkpointEvery: every, shouldStop: cb.shouldStop,
                            progress: { p in
                                cb.call(progressFn) {
                                    Py_BuildTuple5(pyInt(p.epoch), pyInt(p.batch), pyInt(p.batchesPerEpoch),
                                                   pyFloat(p.loss), pyFloat(Double(p.learningRate)))
                                }
                            },
                            checkpoint: { st in
                                cb.call(checkpointFn) {
                                    guard let d = tensorsToPy(st), let t = PyTuple_New(1) else { return nil }
                                    PyTuple_SetItem(t, 0, d)
                                    return t
                                }
                            })
                        if let ht = method as? HashTraining { finalMemory = ht.loss.memory }
                    }
                } }
            } catch SAATError.interrupted where cb.failed {
                return nil   // the Python exception (KeyboardInterrupt, callback error) is pending
            } catch let SAATError.corrupt(what, reason) where resume != nil {
                // an incomplete or inconsistent resume state: name the argument it came from
                throw SAATError.invalidArgument("resume", "a complete checkpoint of this run (\(what): \(reason))")
            }
            var items: [(String, PyObj?)] = [("history", pyList(history.map { pyFloat($0) }))]
            if let fm = finalMemory { items.append(("memory", tensorsToPy(["memory": fm]))) }
            return pyDict(items)
        }
    }
}

/// A new 5-tuple stealing the references (nil if any is nil).
func Py_BuildTuple5(_ a: PyObj?, _ b: PyObj?, _ c: PyObj?, _ d: PyObj?, _ e: PyObj?) -> PyObj? {
    let items = [a, b, c, d, e]
    guard items.allSatisfy({ $0 != nil }), let t = PyTuple_New(5) else {
        for i in items { if let i { saat_decref(i) } }
        return nil
    }
    for (i, o) in items.enumerated() { PyTuple_SetItem(t, i, o) }
    return t
}

let trainNames = ["model", "images", "labels", "epochs", "batch_size", "lr", "milestones", "gamma", "seed",
                  "progress", "checkpoint", "checkpoint_every", "resume"]

/// train_hashing(model, images, labels, epochs, batch_size, lr=0.01, milestones=None, gamma=0.1,
///               seed=0, progress=None, checkpoint=None, checkpoint_every=0, resume=None,
///               loss="dpsh", momentum=0.9, weight_decay=5e-4) -> dict(history, memory)
let trainHashingFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("train_hashing", args, nargs, kw,
                         names: trainNames + ["loss", "momentum", "weight_decay"], required: 5)
        let m = try modelArg(a)
        let lossName = try a.string("loss", "dpsh")
        let momentum = try a.finite("momentum", 0.9)
        let wd = try a.finite("weight_decay", 5e-4)
        let seed = try a.int("seed", 0)
        return try runTraining(a, m, defaults: (0.01, [1.0 / 3.0, 2.0 / 3.0])) { _, labels in
            let loss = try makeHashingLoss(name: lossName, bits: m.bits, trainLabels: labels, seed: UInt64(max(0, seed)))
            let opt = try SGD(params: m.params, learningRate: 0.01, momentum: Float(momentum), weightDecay: Float(wd))
            return HashTraining(model: m, loss: loss, optimizer: opt)
        }
    }
}

/// Upper bound of the inner attack's steps per batch in adversarial training (papers: 7 to 10).
let maxInnerSteps = 1000

/// train_adversarial(method, model, images, labels, epochs, batch_size, lr=None, milestones=None,
///   gamma=0.1, seed=0, progress=None, checkpoint=None, checkpoint_every=0, resume=None, loss="dpsh",
///   momentum=None, weight_decay=None, lambda_adv=1.0, mu=1e-4, eps=8/255, step=2/255, steps=7,
///   adv_weight=2.0) -> dict(history)
/// method: "saat" (SAATTraining), "cgat" (CgATTraining) or "atrdh" (ATRDHTraining); None for lr,
/// momentum or weight_decay means the method's paper default.
let trainAdversarialFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("train_adversarial", args, nargs, kw,
                         names: trainNames + ["method", "loss", "momentum", "weight_decay", "lambda_adv", "mu",
                                              "eps", "step", "steps", "adv_weight"], required: 5)
        let m = try modelArg(a)
        let methodName = try a.string("method")
        let lossName = try a.string("loss", "dpsh")
        let seed = UInt64(max(0, try a.int("seed", 0)))
        let innerSteps = try a.int("steps", 7)
        // The inner attack of a batch runs without a Ctrl-C check (the loop checks between
        // batches): bound it so a huge value cannot make a batch, and Ctrl-C, wait for ever.
        try require(innerSteps >= 1 && innerSteps <= maxInnerSteps, "steps", "an int in 1...\(maxInnerSteps), got \(innerSteps)")
        let inner = InnerAttack(eps: Float(try a.finite("eps", 8.0 / 255)), step: Float(try a.finite("step", 2.0 / 255)),
                                steps: innerSteps)
        let lambda = Float(try a.finite("lambda_adv", 1)), mu = Float(try a.finite("mu", 1e-4))
        let advWeight = Float(try a.finite("adv_weight", 2))
        let defaults: (Double, [Double], Double, Double)
        switch methodName {
        case "saat": defaults = (Double(SAATTraining.defaultLearningRate), SAATTraining.defaultMilestones, 0, 1e-5)
        case "cgat": defaults = (Double(CgATTraining.defaultLearningRate), CgATTraining.defaultMilestones, 0.9, 5e-4)
        case "atrdh": defaults = (1e-4, [0.5, 0.75], 0, 0)
        default: throw SAATError.invalidArgument("method", "one of 'saat', 'cgat', 'atrdh', got '\(methodName)'")
        }
        let lr = Float(try a.finite("lr", defaults.0))
        let momentum = Float(try a.finite("momentum", defaults.2))
        let wd = Float(try a.finite("weight_decay", defaults.3))
        return try runTraining(a, m, defaults: (defaults.0, defaults.1)) { _, labels in
            let loss = try makeHashingLoss(name: lossName, bits: m.bits, trainLabels: labels, seed: seed)
            switch methodName {
            case "saat":
                return try SAATTraining.make(model: m, loss: loss, trainLabels: labels, lr: lr, momentum: momentum,
                                             weightDecay: wd, lambda: lambda, mu: mu, inner: inner, seed: seed)
            case "cgat":
                return try CgATTraining.make(model: m, loss: loss, trainLabels: labels, lr: lr, momentum: momentum,
                                             weightDecay: wd, lambda: lambda, inner: inner, seed: seed)
            default:
                return try ATRDHTraining(model: m, loss: loss, trainLabels: labels, lr: lr, advWeight: advWeight,
                                         inner: inner, seed: seed)
            }
        }
    }
}

let trainingMethods: [PyMethodDef] = [
    method("train_adversarial", trainAdversarialFn, "train_adversarial(method, model, images, labels, epochs, batch_size, ...) -> dict"),
    method("train_hashing", trainHashingFn, "train_hashing(model, images, labels, epochs, batch_size, lr=0.01, ..., loss='dpsh') -> dict"),
]
