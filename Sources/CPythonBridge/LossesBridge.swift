import CPython
import SAATCore

// saat._core entry points for SAATCore/Losses (saat.losses in Python).

/// Python names of the core's argument names, so every message names what the caller passed.
private let pythonArgumentNames = ["trainLabels": "train_labels", "loss": "name", "bits": "u"]

/// hash_loss(name, u, labels, indices, train_labels, memory, grad_out, seed=0, write_memory=False) → float
///
/// One-shot evaluation of a hashing loss (SAATCore `makeHashingLoss`): u (B, K) float32, labels (B, C)
/// float32 0/1, indices (B,) int64 in 0..<N, train_labels (N, C) float32 0/1, memory (N, K) float32 (used
/// as U), grad_out (B, K) float32 writable ← ∂loss/∂u. The loss object is built from train_labels,
/// its memory set to `memory` (DSDH: B = sign(U)) and `beginEpoch(0)` run (DSDH: the DCC updates);
/// then, without write_memory, the pure `value` (U held as given); with write_memory,
/// `lossAndGradient` (u written into rows `indices` first) and those rows copied back into `memory`.
/// Computation runs with the GIL released.
let hashLossFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("hash_loss", args, nargs, kw,
                         names: ["name", "u", "labels", "indices", "train_labels", "memory", "grad_out",
                                 "seed", "write_memory"], required: 7)
        let name = try a.string("name")
        let seed = try a.int("seed", 0)
        try require(seed >= 0, "seed", "an int >= 0, got \(seed)")
        let writeMemory = try a.bool("write_memory", false)
        let loss: Double = try f32(a.required("u"), "u", shape: [nil, nil]) { U in
            let b = U.dim(0), k = U.dim(1)
            try require(b >= 1 && k >= 1, "u", "a (B, K) array with B >= 1 and K >= 1, got \(U.shape)")
            return try f32(a.required("train_labels"), "train_labels", shape: [nil, nil]) { TL in
                let n = TL.dim(0), c = TL.dim(1)
                return try f32(a.required("labels"), "labels", shape: [b, c]) { L in
                    try withArray(a.required("indices"), "indices", .int64, as: Int64.self, shape: [b]) { I in
                        try f32(a.required("memory"), "memory", shape: [n, k], writable: writeMemory) { M in
                            try f32(a.required("grad_out"), "grad_out", shape: [b, k], writable: true) { G in
                                try withoutGIL {
                                    try renamingArguments(pythonArgumentNames) {
                                        try computeHashLoss(name: name, seed: UInt64(seed), writeMemory: writeMemory,
                                                            u: U, labels: L, indices: I, trainLabels: TL,
                                                            memory: M, gradOut: G)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return pyFloat(loss)
    }
}


/// The GIL-free part of `hash_loss`: copies the inputs into tensors, validates, evaluates.
private func computeHashLoss(name: String, seed: UInt64, writeMemory: Bool, u U: ArrayView<Float>,
                             labels L: ArrayView<Float>, indices I: ArrayView<Int64>,
                             trainLabels TL: ArrayView<Float>, memory M: ArrayView<Float>,
                             gradOut G: ArrayView<Float>) throws -> Double {
    let b = U.dim(0), k = U.dim(1), n = TL.dim(0), c = TL.dim(1)
    let trainLabels = Tensor(shape: [n, c], copying: TL.constPtr)
    let made = try makeHashingLoss(name: name, bits: k, trainLabels: trainLabels, seed: seed)
    guard let lossObj = made as? HashingLossValue else {
        throw SAATError.invalidArgument("name", "a loss with a value function, got '\(name)'")
    }
    let u = Tensor(shape: [b, k], copying: U.constPtr)
    let labels = Tensor(shape: [b, c], copying: L.constPtr)
    let indices = (0..<b).map { Int(I.ptr[$0]) }
    let memory = Tensor(shape: [n, k], copying: M.constPtr)
    try validateMemory(memory, n: n, bits: k)
    try lossObj.validateBatch(u: u, labels: labels, indices: indices)
    lossObj.memory = memory
    lossObj.beginEpoch(0)
    let result = writeMemory ? lossObj.lossAndGradient(u: u, labels: labels, indices: indices)
                             : lossObj.value(u: u, labels: labels, indices: indices)
    result.grad.data.withUnsafeBufferPointer { G.ptr.update(from: $0.baseAddress!, count: b * k) }
    if writeMemory {
        lossObj.memory.data.withUnsafeBufferPointer { mp in
            for i in indices { (M.ptr + i * k).update(from: mp.baseAddress! + i * k, count: k) }
        }
    }
    return result.loss
}

let lossMethods: [PyMethodDef] = [
    method("hash_loss", hashLossFn,
           "hash_loss(name, u, labels, indices, train_labels, memory, grad_out, seed=0, write_memory=False) -> float"),
]
