import CPython
import SAATCore

// saat._core entry points for SAATCore/Codes (saat.codes in Python).

/// Reads ±1 training codes (float32 (N, K)) and labels (float32 (N, C), 0/1) into tensors.
func trainSetArgs(_ a: Args, codes: String = "train_codes", labels: String = "train_labels",
                  bits: Int? = nil) throws -> (Tensor, Tensor) {
    let tc: Tensor = try f32(a.required(codes), codes, shape: [nil, bits]) { v in
        try require(v.dim(0) >= 1, codes, "at least one training code")
        for i in 0..<v.count where v.ptr[i] != 1 && v.ptr[i] != -1 {
            throw valueError("argument '\(codes)': expected codes in {-1, +1}, found \(v.ptr[i]) at flat index \(i)")
        }
        return Tensor(shape: v.shape, copying: v.constPtr)
    }
    let tl: Tensor = try f32(a.required(labels), labels, shape: [tc.batch, nil]) { v in
        try requireBinary(v, labels)
        return Tensor(shape: v.shape, copying: v.constPtr)
    }
    return (tc, tl)
}

func requireBinary(_ v: ArrayView<Float>, _ name: String) throws {
    for i in 0..<v.count where v.ptr[i] != 0 && v.ptr[i] != 1 {
        throw valueError("argument '\(name)': expected multi-hot 0/1 labels, found \(v.ptr[i]) at flat index \(i)")
    }
}

/// Label rows (float32 (B, C) 0/1) matching the training labels' width.
func labelArg(_ a: Args, _ name: String, rows: Int?, classes: Int) throws -> Tensor {
    try f32(a.required(name), name, shape: [rows, classes]) { v in
        try requireBinary(v, name)
        return Tensor(shape: v.shape, copying: v.constPtr)
    }
}

/// semantic_codes(kind, labels, train_codes, train_labels, out): kind "mainstay" or "center";
/// out float32 (B, K) ← codes in {-1, 0, +1}.
let semanticCodesFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("semantic_codes", args, nargs, kw, names: ["kind", "labels", "train_codes", "train_labels", "out"], required: 5)
        let kindName = try a.string("kind")
        guard let kind = SemanticCodes.Kind(rawValue: kindName) else {
            throw SAATError.invalidArgument("kind", "'mainstay' or 'center', got '\(kindName)'")
        }
        let (tc, tl) = try trainSetArgs(a)
        let y = try labelArg(a, "labels", rows: nil, classes: tl.shape[1])
        try f32(a.required("out"), "out", shape: [y.batch, tc.shape[1]], writable: true) { o in
            let codes = try withoutGIL { try SemanticCodes.compute(kind, labels: y, trainCodes: tc, trainLabels: tl) }
            codes.data.withUnsafeBufferPointer { if o.count > 0 { o.ptr.update(from: $0.baseAddress!, count: o.count) } }
        }
        return saat_none()
    }
}

let codeMethods: [PyMethodDef] = [
    method("semantic_codes", semanticCodesFn, "semantic_codes(kind, labels, train_codes, train_labels, out)"),
]
