import CPython
import SAATCore

// saat._core entry points for SAATCore/Models (saat.models in Python). A model is a PyCapsule
// handle (see Handles.swift); every call takes the model's lock with the GIL released.

/// model_new(backbone, bits, seed=None, mean=None, std=None) -> handle; `bits` and `seed` are
/// checked (and `seed` defaulted) by the backbone's schema.
let modelNewFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_new", args, nargs, kw, names: ["backbone", "bits", "seed", "mean", "std"], required: 2)
        let name = try a.string("backbone")
        guard let bb = Backbone(rawValue: name) else {
            throw SAATError.invalidArgument("backbone", "one of " + Backbone.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
                                            + ", got '\(name)'")
        }
        var given: [String: Value] = ["bits": .int(try a.int("bits"))]
        if a.has("seed") { given["seed"] = .int(try a.int("seed")) }
        let s = try bb.schema.resolve(given)
        let mean: [Float]? = try a.obj("mean").map { o in try f32(o, "mean", shape: [nil]) { Array(UnsafeBufferPointer(start: $0.constPtr, count: $0.count)) } }
        let std: [Float]? = try a.obj("std").map { o in try f32(o, "std", shape: [nil]) { Array(UnsafeBufferPointer(start: $0.constPtr, count: $0.count)) } }
        let m = try withoutGIL { try HashingModel(backbone: bb, bits: s.int("bits"), seed: UInt64(s.int("seed")), mean: mean, std: std) }
        return makeModelCapsule(m)
    }
}

/// model_info(model) -> dict(backbone, bits, input_shape, mean, std, training, seed)
let modelInfoFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_info", args, nargs, kw, names: ["model"], required: 1)
        let m = try modelArg(a)
        let (shape, mean, std, training) = withoutGIL { m.withLock { (m.inputShape, m.mean, m.std, m.mode == .train) } }
        return pyDict([
            ("backbone", pyStr(m.backbone.rawValue)),
            ("bits", pyInt(m.bits)),
            ("seed", pyInt(Int(m.seed))),
            ("input_shape", pyList(shape.map { pyInt($0) })),
            ("mean", pyList(mean.map { pyFloat(Double($0)) })),
            ("std", pyList(std.map { pyFloat(Double($0)) })),
            ("training", training ? saat_true() : saat_false()),
        ])
    }
}

/// model_set_mode(model, training)
let modelSetModeFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_set_mode", args, nargs, kw, names: ["model", "training"], required: 2)
        let m = try modelArg(a)
        let t = try a.bool("training", false)
        withoutGIL { m.withLock { m.mode = t ? .train : .eval } }
        return saat_none()
    }
}

/// model_set_normalisation(model, mean, std)
let modelSetNormFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_set_normalisation", args, nargs, kw, names: ["model", "mean", "std"], required: 3)
        let m = try modelArg(a)
        let c = m.inputShape[0]
        let mean = try f32(a.required("mean"), "mean", shape: [c]) { Array(UnsafeBufferPointer(start: $0.constPtr, count: c)) }
        let std = try f32(a.required("std"), "std", shape: [c]) { Array(UnsafeBufferPointer(start: $0.constPtr, count: c)) }
        try require(mean.allSatisfy(\.isFinite), "mean", "finite values")
        try require(std.allSatisfy { $0.isFinite && $0 > 0 }, "std", "finite values > 0")
        withoutGIL { m.withLock { m.mean = mean; m.std = std } }
        return saat_none()
    }
}

/// Checks an image batch argument against the model: float32 (N, C, H, W), every pixel finite and
/// in [0, 1]. The one place images are checked (the Python layer only converts dtype and order).
func imagesArg<R>(_ a: Args, _ name: String, _ m: HashingModel, _ body: (ArrayView<Float>) throws -> R) throws -> R {
    try f32(a.required(name), name, shape: [nil] + m.inputShape.map { Optional($0) }) { x in
        for i in 0..<x.count where !(x.ptr[i] >= 0 && x.ptr[i] <= 1) {
            let v = x.ptr[i]
            throw valueError("argument '\(name)': expected " + (v.isFinite
                ? "pixel values in [0, 1] (scale 0..255 images by 1/255 or pass uint8), got \(v) at flat index \(i)"
                : "finite pixel values, found \(v) at flat index \(i)"))
        }
        return try body(x)
    }
}

/// model_forward(model, x, out, alpha=1.0): out (N, K) ← F(x; alpha)
let modelForwardFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_forward", args, nargs, kw, names: ["model", "x", "out", "alpha"], required: 3)
        let m = try modelArg(a)
        let alpha = try a.finite("alpha", 1)
        try require(alpha > 0, "alpha", "a value > 0, got \(alpha)")
        let cb = PythonCallbacks(holding: m)
        let r: Bool = try imagesArg(a, "x", m) { x in
            try f32(a.required("out"), "out", shape: [x.dim(0), m.bits], writable: true) { o in
                do {
                    try withoutGIL {
                        try m.withLock {
                            try m.predict(images: x.constPtr, n: x.dim(0), alpha: Float(alpha), out: o.ptr, shouldStop: cb.shouldStop)
                        }
                    }
                } catch SAATError.interrupted where cb.failed { return false }
                return true
            }
        }
        return r ? saat_none() : nil
    }
}

/// model_input_gradient(model, x, grad_out, out, alpha=1.0): out (N,C,H,W) ← (∂F/∂x)ᵀ grad_out
let modelInputGradientFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_input_gradient", args, nargs, kw, names: ["model", "x", "grad_out", "out", "alpha"], required: 4)
        let m = try modelArg(a)
        let alpha = try a.finite("alpha", 1)
        try require(alpha > 0, "alpha", "a value > 0, got \(alpha)")
        let cb = PythonCallbacks(holding: m)
        let r: Bool = try imagesArg(a, "x", m) { x in
            let n = x.dim(0)
            return try f32(a.required("grad_out"), "grad_out", shape: [n, m.bits]) { g in
                try requireFinite(g, "grad_out")
                return try f32(a.required("out"), "out", shape: x.shape.map { Optional($0) }, writable: true) { o in
                    do {
                        try withoutGIL {
                            try m.withLock {
                                try m.inputGradient(images: x.constPtr, gradOut: g.constPtr, n: n, alpha: Float(alpha),
                                                    out: o.ptr, shouldStop: cb.shouldStop)
                            }
                        }
                    } catch SAATError.interrupted where cb.failed { return false }
                    return true
                }
            }
        }
        return r ? saat_none() : nil
    }
}

/// model_state_dict(model) -> dict name -> (bytearray, shape), in PyTorch order (dicts keep order)
let modelStateDictFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_state_dict", args, nargs, kw, names: ["model"], required: 1)
        let m = try modelArg(a)
        return orderedTensorsToPy(withoutGIL { m.withLock { m.stateDict() } })
    }
}

/// model_load_state_dict(model, state): strict, every parameter with its shape, finite values
let modelLoadStateDictFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("model_load_state_dict", args, nargs, kw, names: ["model", "state"], required: 2)
        let m = try modelArg(a)
        let d = try tensorsFromPy(a.required("state"), "state")
        try withoutGIL { try m.withLock { try m.loadStateDict(d) } }
        return saat_none()
    }
}

let modelMethods: [PyMethodDef] = [
    method("model_new", modelNewFn, "model_new(backbone, bits, seed=None, mean=None, std=None) -> handle"),
    method("model_info", modelInfoFn, "model_info(model) -> dict"),
    method("model_set_mode", modelSetModeFn, "model_set_mode(model, training)"),
    method("model_set_normalisation", modelSetNormFn, "model_set_normalisation(model, mean, std)"),
    method("model_forward", modelForwardFn, "model_forward(model, x, out, alpha=1.0)"),
    method("model_input_gradient", modelInputGradientFn, "model_input_gradient(model, x, grad_out, out, alpha=1.0)"),
    method("model_state_dict", modelStateDictFn, "model_state_dict(model) -> dict name -> (bytearray, shape)"),
    method("model_load_state_dict", modelLoadStateDictFn, "model_load_state_dict(model, state)"),
]
