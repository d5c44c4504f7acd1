import CPython
import SAATCore

// saat._core entry points for SAATCore/Attacks (saat.attacks in Python): one generic pair for every
// attack of `Registry.attacks`. `attack_prepare` checks the parameters against the attack's schema
// and its data once and returns a handle; `attack_run` runs the whole iterative loop on a batch in
// Swift with the GIL released (Ctrl-C is checked between iterations).

/// attack_prepare(name, model, inputs, params) -> (handle, dict(targeted, label_classes, guides, params))
/// `inputs`: dict of the schema's data inputs (name → float32 array, e.g. train_codes, train_labels);
/// `params`: dict of hyper-parameters (omitted ones take the schema's defaults). THA trains its
/// prototype net here.
let attackPrepareFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_prepare", args, nargs, kw, names: ["name", "model", "inputs", "params"], required: 2)
        let spec = try Registry.attack(try a.string("name"))
        let m = try modelArg(a)
        let settings = try settingsArg(a, "params", spec.schema)
        let given = try a.obj("inputs").map { try tensorsFromPy($0, "inputs") } ?? [:]
        for name in given.keys.sorted() where !spec.schema.inputs.contains(where: { $0.name == name }) {
            throw typeError("\(spec.schema.python)() got an unexpected data argument '\(name)'")
        }
        let cb = PythonCallbacks()
        var prepared: PreparedAttack? = nil
        do {
            try withoutGIL { prepared = try spec.prepare(m.bits, AttackInputs(given), settings, cb.shouldStop) }
        } catch SAATError.interrupted where cb.failed {
            return nil
        }
        let p = prepared!
        guard let handle = makeAttackCapsule(p) else { return nil }
        guard let info = pyDict([("targeted", p.targeted ? saat_true() : saat_false()),
                                 ("label_classes", p.labelClasses.map { pyInt($0) } ?? saat_none()),
                                 ("guides", p.guides ? saat_true() : saat_false()),
                                 ("params", settingsToPy(p.settings, p.schema))]) else { saat_decref(handle); return nil }
        return pyTuple([handle, info])
    }
}

/// attack_run(attack, model, images, out, labels=None, guide_out=None, first_index=0): out (N, C, H, W)
/// float32 ← adversarial images; guide_out (N, K) int8 ← the guide codes, for an attack that has
/// them; `first_index`: index of images[0] in the caller's whole query set (per-image random streams).
let attackRunFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_run", args, nargs, kw, names: ["attack", "model", "images", "out", "labels", "guide_out", "first_index"],
                         required: 4)
        let attack = try attackArg(a)
        let m = try modelArg(a)
        let first = try a.int("first_index", 0)
        let labels = try a.obj("labels").map { o in
            try f32(o, "labels", shape: [nil, nil]) { Tensor(shape: $0.shape, copying: $0.constPtr) }
        }
        let cb = PythonCallbacks(holding: m)
        return try imagesArg(a, "images", m) { x in
            try f32(a.required("out"), "out", shape: x.shape.map { Optional($0) }, writable: true) { o in
                try optionalArray(a, "guide_out", .int8, as: Int8.self, shape: [x.dim(0), m.bits], writable: true) { g in
                    do {
                        try withoutGIL {
                            try m.withLock {
                                try attack.run(model: m, images: x.constPtr, n: x.dim(0), labels: labels, out: o.ptr,
                                               guide: g?.ptr, firstIndex: first, shouldStop: cb.shouldStop)
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

let attackMethods: [PyMethodDef] = [
    method("attack_prepare", attackPrepareFn, "attack_prepare(name, model, inputs, params) -> (handle, info)"),
    method("attack_run", attackRunFn, "attack_run(attack, model, images, out, labels=None, guide_out=None, first_index=0)"),
]
