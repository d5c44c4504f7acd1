import CPython
import SAATCore

// saat._core entry point for SAATCore/Losses (saat.losses in Python).

/// hash_loss(name, u, labels, indices, train_labels, memory, grad_out, params=None, write_memory=False) → float
///
/// One evaluation of a hashing loss (SAATCore `evaluateHashLoss`): u (B, K) float32, labels (B, C)
/// float32 0/1, indices (B,) int64 in 0..<N, train_labels (N, C) float32 0/1, memory (N, K) float32 (used
/// as U), grad_out (B, K) float32 writable ← ∂loss/∂u; `params`: the loss's parameters (CSQ: seed).
/// With write_memory, rows `indices` of `memory` receive u (as a training step writes them).
/// Computation runs with the GIL released.
let hashLossFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("hash_loss", args, nargs, kw,
                         names: ["name", "u", "labels", "indices", "train_labels", "memory", "grad_out", "params",
                                 "write_memory"], required: 7)
        let spec = try Registry.loss(try a.string("name"), argument: "name")
        let settings = try settingsArg(a, "params", spec.schema)
        let writeMemory = try a.bool("write_memory", false)
        let loss: Double = try f32(a.required("u"), "u", shape: [nil, nil]) { U in
            let b = U.dim(0), k = U.dim(1)
            return try f32(a.required("train_labels"), "train_labels", shape: [nil, nil]) { TL in
                let n = TL.dim(0), c = TL.dim(1)
                return try f32(a.required("labels"), "labels", shape: [b, c]) { L in
                    try withArray(a.required("indices"), "indices", .int64, as: Int64.self, shape: [b]) { I in
                        try f32(a.required("memory"), "memory", shape: [n, k], writable: writeMemory) { M in
                            try f32(a.required("grad_out"), "grad_out", shape: [b, k], writable: true) { G in
                                try withoutGIL {
                                    let r = try evaluateHashLoss(
                                        spec, u: Tensor(shape: [b, k], copying: U.constPtr),
                                        labels: Tensor(shape: [b, c], copying: L.constPtr), indices: (0..<b).map { Int(I.ptr[$0]) },
                                        trainLabels: Tensor(shape: [n, c], copying: TL.constPtr),
                                        memory: Tensor(shape: [n, k], copying: M.constPtr), settings: settings, writeMemory: writeMemory)
                                    r.grad.data.withUnsafeBufferPointer { G.ptr.update(from: $0.baseAddress!, count: b * k) }
                                    if writeMemory { r.memory.data.withUnsafeBufferPointer { M.ptr.update(from: $0.baseAddress!, count: n * k) } }
                                    return r.loss
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

let lossMethods: [PyMethodDef] = [
    method("hash_loss", hashLossFn,
           "hash_loss(name, u, labels, indices, train_labels, memory, grad_out, params=None, write_memory=False) -> float"),
]
