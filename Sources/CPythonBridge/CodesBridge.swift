import CPython
import SAATCore

// saat._core entry point for SAATCore/Codes (saat.codes in Python).

/// semantic_codes(kind, labels, train_codes, train_labels, out): kind "mainstay" or "center";
/// out (B, K) int8 ← codes in {-1, 0, +1}.
let semanticCodesFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("semantic_codes", args, nargs, kw, names: ["kind", "labels", "train_codes", "train_labels", "out"],
                         required: 5)
        let kindName = try a.string("kind")
        guard let kind = SemanticCodes.Kind(rawValue: kindName) else {
            throw SAATError.invalidArgument("kind", "'mainstay' or 'center', got '\(kindName)'")
        }
        let tensor = { (name: String) in try f32(a.required(name), name, shape: [nil, nil]) { Tensor(shape: $0.shape, copying: $0.constPtr) } }
        let y = try tensor("labels"), tc = try tensor("train_codes"), tl = try tensor("train_labels")
        try withArray(a.required("out"), "out", .int8, as: Int8.self, shape: [y.batch, tc.shape[1]], writable: true) { o in
            let codes = try withoutGIL { try SemanticCodes.checked(kind, labels: y, trainCodes: tc, trainLabels: tl) }
            for i in 0..<o.count { o.ptr[i] = Int8(codes.data[i]) }
        }
        return saat_none()
    }
}

let codeMethods: [PyMethodDef] = [
    method("semantic_codes", semanticCodesFn, "semantic_codes(kind, labels, train_codes, train_labels, out)"),
]
