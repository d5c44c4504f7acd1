import CPython
import SAATCore

// saat._core entry points for SAATCore/Attacks (saat.attacks in Python). Every attack runs its
// whole iterative loop in Swift with the GIL released; Ctrl-C is checked between iterations.

/// Parameter names shared by every attack entry point.
let attackCommon = ["model", "images", "out", "eps", "step", "steps", "random_start", "alpha_schedule", "seed"]

/// Parses the common attack parameters into a config (sign-step update by default).
func attackConfig(_ a: Args, update: ImageUpdate? = nil, mseWeight: Float = 0) throws -> AttackConfig {
    let eps = try a.finite("eps")
    let steps = try a.int("steps")
    let seed = try a.int("seed", 0)
    try require(seed >= 0, "seed", "an int ≥ 0, got \(seed)")
    let upd: ImageUpdate
    if let update { upd = update } else { upd = .sign(step: Float(try a.finite("step"))) }
    let c = AttackConfig(eps: Float(eps), steps: steps, update: upd, randomStart: try a.bool("random_start", true),
                         alphaSchedule: try a.bool("alpha_schedule", false), mseWeight: mseWeight, seed: UInt64(seed))
    try c.validate()
    return c
}

/// Shared body: checks images/out, runs `body` without the GIL under the model lock, maps a
/// Python-side stop (Ctrl-C) to the pending exception. Returns the guide codes (or nil).
func runAttack(_ a: Args, _ m: HashingModel,
               _ body: (_ x: UnsafePointer<Float>, _ n: Int, _ out: UnsafeMutablePointer<Float>,
                        _ stop: () -> Bool) throws -> Tensor?) throws -> PyObj? {
    let cb = PythonCallbacks(holding: m)
    return try imagesArg(a, "images", m) { x in
        try f32(a.required("out"), "out", shape: x.shape.map { Optional($0) }, writable: true) { o in
            var guide: Tensor? = nil
            do {
                try withoutGIL {
                    try m.withLock { guide = try body(x.constPtr, x.dim(0), o.ptr, cb.shouldStop) }
                }
            } catch SAATError.interrupted where cb.failed {
                return nil
            }
            guard let guide else { return saat_none() }
            return tensorsToPy(["codes": guide])
        }
    }
}

/// attack_pgd(model, images, out, eps, step, steps, random_start=True, alpha_schedule=False, seed=0)
let attackPGDFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_pgd", args, nargs, kw, names: attackCommon, required: 6)
        let m = try modelArg(a)
        let cfg = try attackConfig(a)
        return try runAttack(a, m) { x, n, out, stop in
            try PGDAttack.run(model: m, images: x, n: n, config: cfg, out: out, shouldStop: stop)
            return nil
        }
    }
}

/// attack_semantic(model, images, out, eps, step, steps, random_start, alpha_schedule, seed,
///                 kind, labels, train_codes, train_labels, targeted) -> {"codes": guide codes}
/// kind "mainstay" = SAAT's masked mainstay attack, "center" = CgAT's center-code PGD.
let attackSemanticFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_semantic", args, nargs, kw,
                         names: attackCommon + ["kind", "labels", "train_codes", "train_labels", "targeted"], required: 6)
        let m = try modelArg(a)
        let cfg = try attackConfig(a)
        let kind = try a.string("kind")
        try require(kind == "mainstay" || kind == "center", "kind", "'mainstay' or 'center', got '\(kind)'")
        let targeted = try a.bool("targeted", false)
        let (tc, tl) = try trainSetArgs(a, bits: m.bits)
        let y = try labelArg(a, "labels", rows: nil, classes: tl.shape[1])
        return try runAttack(a, m) { x, n, out, stop in
            try require(y.batch == n, "labels", "one label row per image (\(n)), got \(y.batch)")
            if kind == "mainstay" {
                return try SAATAttack.run(model: m, images: x, n: n, labels: y, trainCodes: tc, trainLabels: tl,
                                          targeted: targeted, config: cfg, out: out, shouldStop: stop)
            }
            return try CenterAttack.run(model: m, images: x, n: n, labels: y, trainCodes: tc, trainLabels: tl,
                                        targeted: targeted, config: cfg, out: out, shouldStop: stop)
        }
    }
}

/// attack_hag(model, images, out, eps, steps, random_start, alpha_schedule, seed, lr=100, momentum=0.9)
let attackHAGFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_hag", args, nargs, kw, names: attackCommon + ["lr", "momentum"], required: 6)
        let m = try modelArg(a)
        let cfg = try attackConfig(a, update: .sgd(lr: Float(try a.finite("lr", 100)), momentum: Float(try a.finite("momentum", 0.9))))
        return try runAttack(a, m) { x, n, out, stop in
            try HAGAttack.run(model: m, images: x, n: n, config: cfg, out: out, shouldStop: stop)
            return nil
        }
    }
}

/// attack_sdha(model, images, out, eps, steps, random_start, alpha_schedule, seed, labels,
///             train_codes, train_labels, targeted, lr=0.01)
let attackSDHAFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_sdha", args, nargs, kw,
                         names: attackCommon + ["labels", "train_codes", "train_labels", "targeted", "lr"], required: 6)
        let m = try modelArg(a)
        let cfg = try attackConfig(a, update: .adam(lr: Float(try a.finite("lr", 0.01)), beta1: 0.9, beta2: 0.999), mseWeight: 1)
        let targeted = try a.bool("targeted", false)
        let (tc, tl) = try trainSetArgs(a, bits: m.bits)
        let y = try labelArg(a, "labels", rows: nil, classes: tl.shape[1])
        return try runAttack(a, m) { x, n, out, stop in
            try SDHAAttack.run(model: m, images: x, n: n, labels: y, trainCodes: tc, trainLabels: tl, targeted: targeted,
                               config: cfg, out: out, shouldStop: stop)
            return nil
        }
    }
}

/// attack_dhta(model, images, out, eps, step, steps, random_start, alpha_schedule, seed, labels,
///             db_codes, db_labels, n_t) -> {"codes": anchor codes}
let attackDHTAFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_dhta", args, nargs, kw, names: attackCommon + ["labels", "db_codes", "db_labels", "n_t"], required: 6)
        let m = try modelArg(a)
        let cfg = try attackConfig(a)
        let nt = try a.int("n_t", 9)
        // n_t codes are drawn per query without a Ctrl-C check: bound it (the papers use 9 and 1).
        try require(nt >= 1 && nt <= maxAnchorCodes, "n_t", "an int in 1...\(maxAnchorCodes), got \(nt)")
        let (dc, dl) = try trainSetArgs(a, codes: "db_codes", labels: "db_labels", bits: m.bits)
        let y = try labelArg(a, "labels", rows: nil, classes: dl.shape[1])
        return try runAttack(a, m) { x, n, out, stop in
            try renamingArguments(["target_labels": "labels"]) {
                try DHTAAttack.run(model: m, images: x, n: n, targets: y, dbCodes: dc, dbLabels: dl, nt: nt, config: cfg,
                                   out: out, shouldStop: stop)
            }
        }
    }
}

/// Upper bounds of size-like hyper-parameters that the core turns into allocations or loops
/// without a Ctrl-C check (the Python front checks the same bounds).
let maxPrototypeBatch = 1 << 20
let maxAnchorCodes = 1 << 20

/// prototype_train(db_codes, db_labels, steps, batch, seed) -> prototype handle (THA's label → code net)
let prototypeTrainFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("prototype_train", args, nargs, kw, names: ["db_codes", "db_labels", "steps", "batch", "seed"], required: 4)
        let (dc, dl) = try trainSetArgs(a, codes: "db_codes", labels: "db_labels")
        let steps = try a.int("steps"), batch = try a.int("batch"), seed = try a.int("seed", 0)
        try require(seed >= 0, "seed", "an int ≥ 0, got \(seed)")
        try require(steps >= 1, "steps", "an int ≥ 1, got \(steps)")
        // Each step allocates a (batch, classes) label batch: bound it so a huge value is an error,
        // not an allocation failure that aborts the process.
        try require(batch >= 1 && batch <= maxPrototypeBatch, "batch", "an int in 1...\(maxPrototypeBatch), got \(batch)")
        let cb = PythonCallbacks()
        var net: PrototypeNet? = nil
        do {
            try renamingArguments(["classes": "db_labels", "bits": "db_codes", "prototype_steps": "steps",
                                   "prototype_batch": "batch"]) {
                try withoutGIL {
                    net = try THAAttack.trainPrototype(dbCodes: dc, dbLabels: dl, bits: dc.shape[1], steps: steps,
                                                       batch: batch, seed: UInt64(seed), shouldStop: cb.shouldStop)
                }
            }
        } catch SAATError.interrupted where cb.failed {
            return nil
        }
        return makePrototypeCapsule(net!)
    }
}

/// attack_tha(model, images, out, eps, step, steps, random_start, alpha_schedule, seed, labels, prototype)
let attackTHAFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("attack_tha", args, nargs, kw, names: attackCommon + ["labels", "prototype"], required: 6)
        let m = try modelArg(a)
        let cfg = try attackConfig(a)
        let p = try prototypeArg(a)
        try require(p.bits == m.bits, "prototype", "a prototype net of \(m.bits) bits, got \(p.bits)")
        let y = try labelArg(a, "labels", rows: nil, classes: p.classes)
        return try runAttack(a, m) { x, n, out, stop in
            try THAAttack.run(model: m, images: x, n: n, targets: y, prototype: p, config: cfg, out: out, shouldStop: stop)
        }
    }
}

let attackMethods: [PyMethodDef] = [
    method("attack_hag", attackHAGFn, "attack_hag(model, images, out, eps, steps, random_start, alpha_schedule, seed, lr=100, momentum=0.9)"),
    method("attack_sdha", attackSDHAFn, "attack_sdha(model, images, out, eps, steps, ..., labels, train_codes, train_labels, targeted, lr=0.01)"),
    method("attack_dhta", attackDHTAFn, "attack_dhta(model, images, out, eps, step, steps, ..., labels, db_codes, db_labels, n_t)"),
    method("prototype_train", prototypeTrainFn, "prototype_train(db_codes, db_labels, steps, batch, seed=0) -> handle"),
    method("attack_tha", attackTHAFn, "attack_tha(model, images, out, eps, step, steps, ..., labels, prototype)"),
    method("attack_pgd", attackPGDFn, "attack_pgd(model, images, out, eps, step, steps, random_start=True, alpha_schedule=False, seed=0)"),
    method("attack_semantic", attackSemanticFn, "attack_semantic(model, images, out, eps, step, steps, random_start, alpha_schedule, seed, kind, labels, train_codes, train_labels, targeted)"),
]
