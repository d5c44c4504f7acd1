import CPython
import SAATCore

// saat._core entry point for SAATCore/Training (saat.train and saat.defences in Python): one
// generic entry for every recipe of `Registry.trainings` (clean "hashing", "saat", "cgat",
// "atrdh"). The epoch loop runs in Swift with the GIL released; progress and checkpoint callbacks
// re-acquire it once per batch.

/// train(method, model, images, labels, params=None, progress=None, checkpoint=None,
///       checkpoint_every=0, resume=None, memory_out=None) -> list of per-epoch mean losses
/// `params`: the recipe's hyper-parameters (omitted ones take its schema's defaults);
/// `progress(epoch, batch, batches, loss, lr)` after every batch (False stops);
/// `checkpoint(state)` every `checkpoint_every` batches and at the end of every epoch, with the full
/// state as a dict name → (bytearray, shape); `resume`: such a state (dict name → float32 array).
/// `memory_out` (N, K) float32 ← the final loss memory of a recipe that keeps one (clean training).
/// Data-parallel training (`saat.distributed`'s MPI layer): `rank` and `size` of this process and
/// two callables, `allreduce(buf)` (sum a writable float32 memoryview in place over the processes)
/// and `allgather(local, counts, out)` (concatenate every process's `counts[r]` floats into `out`).
let trainFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("train", args, nargs, kw, names: ["method", "model", "images", "labels", "params", "progress",
                                                         "checkpoint", "checkpoint_every", "resume", "memory_out",
                                                         "rank", "size", "allreduce", "allgather"],
                         required: 4)
        let spec = try Registry.training(try a.string("method"))
        let m = try modelArg(a)
        let settings = try settingsArg(a, "params", spec.schema)
        let loopArgs = try LoopArguments(a)
        let cb = PythonCallbacks(holding: m)
        let size = try a.int("size", 1), rank = try a.int("rank", 0)
        try require(size >= 1 && size <= 1 << 16, "size", "an int in 1...65536 (the number of processes), got \(size)")
        try require(rank >= 0 && rank < size, "rank", "an int in 0..<size (\(size)), got \(rank)")
        var group: PythonCollectives? = nil
        if size > 1 {
            guard let reduceFn = try a.callable("allreduce"), let gatherFn = try a.callable("allgather") else {
                throw typeError("argument 'allreduce': data-parallel training (size > 1) needs the allreduce and allgather callables")
            }
            group = PythonCollectives(rank: rank, size: size, allreduce: reduceFn, allgather: gatherFn, callbacks: cb)
        }
        return try imagesArg(a, "images", m) { x in
            try f32(a.required("labels"), "labels", shape: [x.dim(0), nil]) { l in
                let labels = Tensor(shape: l.shape, copying: l.constPtr)
                let source = ImageSource(base: x.constPtr, count: x.dim(0), itemShape: m.inputShape)
                var history: [Double] = []
                return try optionalArray(a, "memory_out", .float32, as: Float.self, shape: [x.dim(0), m.bits], writable: true) { mem in
                    do {
                        try withoutGIL {
                            try m.withLock {
                                let loop = try spec.makeLoop(model: m, images: source, labels: labels, settings: settings)
                                loop.parallel = DataParallel(group: group)
                                history = try runLoop(loop, loopArgs, callbacks: cb)
                                if let mem, let lm = loop.method.lossMemory {
                                    lm.data.withUnsafeBufferPointer { mem.ptr.update(from: $0.baseAddress!, count: lm.count) }
                                }
                            }
                        }
                    } catch SAATError.interrupted where cb.failed {
                        return nil   // the Python exception (KeyboardInterrupt, callback error) is pending
                    }
                    return pyList(history.map { pyFloat($0) })
                }
            }
        }
    }
}

/// The arguments every training entry shares: `progress`, `checkpoint`, `checkpoint_every`, `resume`.
struct LoopArguments {
    let every: Int
    let progress: PyObj?
    let checkpoint: PyObj?
    let resume: [String: Tensor]?

    init(_ a: Args) throws {
        every = try a.int("checkpoint_every", 0)
        try require(every >= 0, "checkpoint_every", "an int >= 0 (0 = never), got \(every)")
        progress = try a.callable("progress")
        checkpoint = try a.callable("checkpoint")
        resume = try a.obj("resume").map { try tensorsFromPy($0, "resume") }
    }
}

/// `loop.run` (GIL released by the caller) with its progress and checkpoint callbacks calling the
/// Python callables `progress(epoch, batch, batches, loss, lr)` and `checkpoint(state)`.
func runLoop(_ loop: TrainingLoop, _ args: LoopArguments, callbacks cb: PythonCallbacks) throws -> [Double] {
    try loop.run(
        resume: args.resume, checkpointEvery: args.every, shouldStop: cb.shouldStop,
        progress: { p in
            cb.call(args.progress) {
                pyTuple([pyInt(p.epoch), pyInt(p.batch), pyInt(p.batchesPerEpoch), pyFloat(p.loss), pyFloat(Double(p.learningRate))])
            }
        },
        checkpoint: { st in cb.call(args.checkpoint) { pyTuple([tensorsToPy(st)]) } })
}

/// The collectives of a data-parallel run, carried out by Python callables (mpi4py, which releases
/// the GIL while it communicates). Each call takes the GIL, wraps the Swift buffers in memoryviews
/// for the duration of the call, and stops the loop when the callable raises. A collective runs
/// even after a callback of this process failed (its exception is set aside and restored), so the
/// processes can still agree to stop together instead of leaving the others waiting.
final class PythonCollectives: CollectiveGroup {
    let rank: Int
    let size: Int
    private let allreduceFn: PyObj
    private let allgatherFn: PyObj
    private let cb: PythonCallbacks

    init(rank: Int, size: Int, allreduce: PyObj, allgather: PyObj, callbacks: PythonCallbacks) {
        self.rank = rank; self.size = size; allreduceFn = allreduce; allgatherFn = allgather; cb = callbacks
    }

    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try invoke(allreduceFn) {
            pyTuple([pyMemoryView(UnsafeMutableRawPointer(buffer), bytes: count * 4, writable: true)])
        }
    }

    func allgather(_ local: UnsafePointer<Float>, counts: [Int], into out: UnsafeMutablePointer<Float>) throws {
        let total = counts.reduce(0, +)
        try invoke(allgatherFn) {
            pyTuple([pyMemoryView(UnsafeMutableRawPointer(mutating: local), bytes: counts[rank] * 4, writable: false),
                     pyList(counts.map { pyInt($0) }),
                     pyMemoryView(UnsafeMutableRawPointer(out), bytes: total * 4, writable: true)])
        }
    }

    /// Calls `fn(*makeArgs())` with the GIL, a pending exception set aside for the call.
    private func invoke(_ fn: PyObj, _ makeArgs: () -> PyObj?) throws {
        let g = PyGILState_Ensure()
        defer { PyGILState_Release(g) }
        var type: PyObj? = nil, value: PyObj? = nil, trace: PyObj? = nil
        PyErr_Fetch(&type, &value, &trace)
        var ok = false
        if let args = makeArgs() {
            if let r = PyObject_CallObject(fn, args) { saat_decref(r); ok = true }
            saat_decref(args)
        }
        if type != nil {
            PyErr_Clear()                       // the first error is the one to report
            PyErr_Restore(type, value, trace)
        }
        if !ok {
            cb.noteFailure()
            throw SAATError.interrupted
        }
    }
}

let trainingMethods: [PyMethodDef] = [
    method("train", trainFn, "train(method, model, images, labels, params=None, progress=None, checkpoint=None, checkpoint_every=0, resume=None, memory_out=None, rank=0, size=1, allreduce=None, allgather=None) -> list"),
]
