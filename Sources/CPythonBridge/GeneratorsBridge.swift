import CPython
import SAATCore

// saat._core entry points for the generative attacks (SAATCore/Attacks/ProSGAN.swift;
// saat.attacks.ProSGAN in Python): build, train (the epoch loop of `TrainingLoop` with the GIL
// released; progress and checkpoint callbacks re-acquire it once per batch), generate, and the
// state dict. Every call that touches the networks holds the attacked model's lock: the
// generator's training runs that model, and the lock serialises all calls on one ProSGAN.

/// prosgan_new(model, inputs, params) -> (handle, params): `inputs` {train_codes, train_labels}.
let prosganNewFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("prosgan_new", args, nargs, kw, names: ["model", "inputs", "params"], required: 2)
        let m = try modelArg(a)
        let settings = try settingsArg(a, "params", ProSGAN.schema)
        let given = try tensorsFromPy(try a.required("inputs"), "inputs")
        for name in given.keys.sorted() where !ProSGAN.schema.inputs.contains(where: { $0.name == name }) {
            throw typeError("ProSGAN() got an unexpected data argument '\(name)'")
        }
        let g = try withoutGIL { try ProSGAN(model: m, inputs: AttackInputs(given), settings: settings) }
        guard let handle = makeGeneratorCapsule(g) else { return nil }
        guard let params = settingsToPy(settings, ProSGAN.schema) else { saat_decref(handle); return nil }
        return pyTuple([handle, params])
    }
}

/// prosgan_fit(generator, model, images, labels, progress=None, checkpoint=None,
///             checkpoint_every=0, resume=None) -> list of per-epoch mean generator losses
/// As `train`: `progress(epoch, batch, batches, loss, lr)`, `checkpoint(state)`, `resume` a state.
let prosganFitFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("prosgan_fit", args, nargs, kw, names: ["generator", "model", "images", "labels", "progress",
                                                               "checkpoint", "checkpoint_every", "resume"], required: 4)
        let g = try generatorArg(a)
        let m = try modelArg(a)
        guard m === g.model else { throw valueError("argument 'model': expected the model this ProSGAN attacks") }
        let loopArgs = try LoopArguments(a)
        let cb = PythonCallbacks(holding: m)
        return try imagesArg(a, "images", m) { x in
            try f32(a.required("labels"), "labels", shape: [x.dim(0), nil]) { l in
                let labels = Tensor(shape: l.shape, copying: l.constPtr)
                let source = ImageSource(base: x.constPtr, count: x.dim(0), itemShape: m.inputShape)
                var history: [Double] = []
                do {
                    try withoutGIL {
                        try m.withLock {
                            let loop = try g.makeLoop(images: source, labels: labels)
                            history = try runLoop(loop, loopArgs, callbacks: cb)
                            g.finishFit()
                        }
                    }
                } catch SAATError.interrupted where cb.failed {
                    return nil
                }
                return pyList(history.map { pyFloat($0) })
            }
        }
    }
}

/// prosgan_generate(generator, model, images, labels, out, codes_out=None): out (N, 3, S, S) ←
/// adversarial images towards the target `labels` (N, C); codes_out (N, K) int8 ← prototype codes.
let prosganGenerateFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("prosgan_generate", args, nargs, kw, names: ["generator", "model", "images", "labels", "out", "codes_out"],
                         required: 5)
        let g = try generatorArg(a)
        let m = try modelArg(a)
        guard m === g.model else { throw valueError("argument 'model': expected the model this ProSGAN attacks") }
        let cb = PythonCallbacks(holding: m)
        return try imagesArg(a, "images", m) { x in
            let labels = try f32(a.required("labels"), "labels", shape: [x.dim(0), nil]) { Tensor(shape: $0.shape, copying: $0.constPtr) }
            return try f32(a.required("out"), "out", shape: x.shape.map { Optional($0) }, writable: true) { o in
                try optionalArray(a, "codes_out", .int8, as: Int8.self, shape: [x.dim(0), m.bits], writable: true) { c in
                    do {
                        try withoutGIL {
                            try m.withLock {
                                try g.generate(images: x.constPtr, n: x.dim(0), targetLabels: labels, out: o.ptr, codes: c?.ptr,
                                               shouldStop: cb.shouldStop)
                            }
                        }
                    } catch SAATError.interrupted where cb.failed {
                        return nil
                    }
                    return saat_none()
                }
            }
        }
    }
}

/// prosgan_state_dict(generator) -> dict name -> (bytearray, shape), official names, in order.
let prosganStateDictFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("prosgan_state_dict", args, nargs, kw, names: ["generator"], required: 1)
        let g = try generatorArg(a)
        return orderedTensorsToPy(withoutGIL { g.model.withLock { g.stateDict() } })
    }
}

/// prosgan_load_state_dict(generator, state): strict (every name, no other, shapes, finite values).
let prosganLoadStateDictFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("prosgan_load_state_dict", args, nargs, kw, names: ["generator", "state"], required: 2)
        let g = try generatorArg(a)
        let d = try tensorsFromPy(a.required("state"), "state")
        try withoutGIL { try g.model.withLock { try g.loadStateDict(d) } }
        return saat_none()
    }
}

let generatorMethods: [PyMethodDef] = [
    method("prosgan_new", prosganNewFn, "prosgan_new(model, inputs, params) -> (handle, params)"),
    method("prosgan_fit", prosganFitFn,
           "prosgan_fit(generator, model, images, labels, progress=None, checkpoint=None, checkpoint_every=0, resume=None) -> list"),
    method("prosgan_generate", prosganGenerateFn, "prosgan_generate(generator, model, images, labels, out, codes_out=None)"),
    method("prosgan_state_dict", prosganStateDictFn, "prosgan_state_dict(generator) -> dict"),
    method("prosgan_load_state_dict", prosganLoadStateDictFn, "prosgan_load_state_dict(generator, state)"),
]
