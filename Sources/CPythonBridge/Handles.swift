import CPython
import Glibc
import SAATCore

// Swift objects owned by Python through PyCapsules. The capsule holds one retained reference;
// its destructor releases it. A capsule's name states the Swift type, so a handle of the wrong
// kind is rejected with a TypeError instead of being reinterpreted.

final class Box<T> {
    let value: T
    init(_ v: T) { value = v }
}

let modelCapsuleName: UnsafeMutablePointer<CChar> = strdup("saat.HashingModel")
let attackCapsuleName: UnsafeMutablePointer<CChar> = strdup("saat.PreparedAttack")
let generatorCapsuleName: UnsafeMutablePointer<CChar> = strdup("saat.ProSGAN")

// Destructors must be C function pointers, one per type (a generic closure cannot be one).
private let releaseModelCapsule: @convention(c) (PyObj?) -> Void = { cap in
    guard let cap, let p = PyCapsule_GetPointer(cap, modelCapsuleName) else { PyErr_Clear(); return }
    Unmanaged<HashingModel>.fromOpaque(p).release()
}
private let releaseAttackCapsule: @convention(c) (PyObj?) -> Void = { cap in
    guard let cap, let p = PyCapsule_GetPointer(cap, attackCapsuleName) else { PyErr_Clear(); return }
    Unmanaged<PreparedAttack>.fromOpaque(p).release()
}

private let releaseGeneratorCapsule: @convention(c) (PyObj?) -> Void = { cap in
    guard let cap, let p = PyCapsule_GetPointer(cap, generatorCapsuleName) else { PyErr_Clear(); return }
    Unmanaged<ProSGAN>.fromOpaque(p).release()
}

/// A new capsule holding one retained reference to `obj`, released by `destructor`.
private func makeCapsule<T: AnyObject>(_ obj: T, _ name: UnsafeMutablePointer<CChar>,
                                       _ destructor: @escaping @convention(c) (PyObj?) -> Void) -> PyObj? {
    let p = Unmanaged.passRetained(obj).toOpaque()
    guard let cap = PyCapsule_New(p, name, destructor) else {
        Unmanaged<T>.fromOpaque(p).release()
        return nil
    }
    return cap
}

/// The object behind a capsule argument (borrowed: the capsule keeps it alive for the call, and
/// the returned strong reference keeps it alive across a GIL release). A capsule of another kind
/// is a TypeError, never a reinterpretation.
private func capsuleArg<T: AnyObject>(_ a: Args, _ argName: String, _ name: UnsafeMutablePointer<CChar>,
                                      _ what: String) throws -> T {
    let o = try a.required(argName)
    guard PyCapsule_IsValid(o, name) == 1, let p = PyCapsule_GetPointer(o, name) else {
        PyErr_Clear()
        throw typeError("argument '\(argName)': expected \(what), got \(typeName(o))")
    }
    return Unmanaged<T>.fromOpaque(p).takeUnretainedValue()
}

func makeModelCapsule(_ m: HashingModel) -> PyObj? { makeCapsule(m, modelCapsuleName, releaseModelCapsule) }
func makeAttackCapsule(_ p: PreparedAttack) -> PyObj? { makeCapsule(p, attackCapsuleName, releaseAttackCapsule) }
func makeGeneratorCapsule(_ g: ProSGAN) -> PyObj? { makeCapsule(g, generatorCapsuleName, releaseGeneratorCapsule) }

func modelArg(_ a: Args, _ name: String = "model") throws -> HashingModel {
    let m: HashingModel = try capsuleArg(a, name, modelCapsuleName, "a saat model handle (HashingModel._handle)")
    if let owners = modelsInCallback[ObjectIdentifier(m)], owners.contains(where: { pthread_equal($0, pthread_self()) != 0 }) {
        // This thread holds the model's lock in a loop that is now running Python code: waiting
        // for the lock would deadlock. Other threads simply wait for the loop to finish.
        throw runtimeError("argument '\(name)': the model is busy in a training loop or attack running on this thread "
                           + "(this call comes from its progress/checkpoint callback or a signal handler); "
                           + "use the model after that call returns, or from another thread (which waits for it)")
    }
    return m
}

/// Models whose lock is held by a loop that is running Python code (a callback or a signal
/// handler) on a given thread. Read and written only with the GIL held.
nonisolated(unsafe) private var modelsInCallback: [ObjectIdentifier: [pthread_t]] = [:]

/// Runs `body` (GIL held) with `model` marked as held by this thread's running loop.
private func markingHeld<R>(_ model: HashingModel?, _ body: () -> R) -> R {
    guard let model else { return body() }
    let key = ObjectIdentifier(model)
    modelsInCallback[key, default: []].append(pthread_self())
    defer {
        if var l = modelsInCallback[key] {
            if let i = l.lastIndex(where: { pthread_equal($0, pthread_self()) != 0 }) { l.remove(at: i) }
            modelsInCallback[key] = l.isEmpty ? nil : l
        }
    }
    return body()
}

func generatorArg(_ a: Args, _ name: String = "generator") throws -> ProSGAN {
    try capsuleArg(a, name, generatorCapsuleName, "a saat ProSGAN handle (from prosgan_new)")
}

func attackArg(_ a: Args, _ name: String = "attack") throws -> PreparedAttack {
    try capsuleArg(a, name, attackCapsuleName, "a prepared saat attack handle (from attack_prepare)")
}

/// Callbacks into Python from a loop running without the GIL: each call takes the GIL, checks
/// for signals (Ctrl-C) and calls the Python callable; any Python exception is kept pending and
/// the loop is told to stop, so the bridge returns it once the loop has unwound.
///
/// `holding` is the model whose lock the loop holds: while Python code runs from here, calls on
/// that model from this thread raise RuntimeError instead of deadlocking on the lock.
final class PythonCallbacks {
    private(set) var failed = false
    private let held: HashingModel?

    init(holding model: HashingModel? = nil) { held = model }

    /// Records that a Python exception is pending for the loop's caller (set by a call made
    /// outside `call`, e.g. a data-parallel collective).
    func noteFailure() { failed = true }

    /// Checks signals (with the GIL) and returns true when the caller should stop.
    func shouldStop() -> Bool {
        if failed { return true }
        let g = PyGILState_Ensure()
        defer { PyGILState_Release(g) }
        if markingHeld(held, { PyErr_CheckSignals() }) != 0 { failed = true }
        return failed
    }

    /// Calls `fn(*args)` built by `makeArgs` (with the GIL); returns false when the caller should
    /// stop (exception raised, signal pending, or the callable returned False).
    func call(_ fn: PyObj?, _ makeArgs: () -> PyObj?) -> Bool {
        if failed { return false }
        let g = PyGILState_Ensure()
        defer { PyGILState_Release(g) }
        if markingHeld(held, { PyErr_CheckSignals() }) != 0 { failed = true; return false }
        guard let fn else { return true }
        guard let args = makeArgs() else { failed = true; return false }
        defer { saat_decref(args) }
        guard let r = markingHeld(held, { PyObject_CallObject(fn, args) }) else { failed = true; return false }
        defer { saat_decref(r) }
        // Only an explicit False stops the loop; None (the usual return) continues.
        if r == saat_false_borrowed() { return false }
        return true
    }
}


/// Converts named float32 tensors into a Python dict name → (bytearray, shape tuple); the Python
/// layer turns each into a numpy array with `numpy.frombuffer(...).reshape(shape)`.
func tensorsToPy(_ d: [String: Tensor]) -> PyObj? {
    guard let dict = PyDict_New() else { return nil }
    for key in d.keys.sorted() {
        let t = d[key]!
        guard let ba = PyByteArray_FromStringAndSize(nil, t.count * 4) else { saat_decref(dict); return nil }
        if t.count > 0 {
            let dst = UnsafeMutableRawPointer(saat_bytearray_data(ba)!).assumingMemoryBound(to: Float.self)
            t.data.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: t.count) }
        }
        guard let shape = PyTuple_New(t.shape.count) else { saat_decref(ba); saat_decref(dict); return nil }
        for (i, s) in t.shape.enumerated() { PyTuple_SetItem(shape, i, PyLong_FromLongLong(Int64(s))) }
        guard let pair = PyTuple_New(2) else { saat_decref(ba); saat_decref(shape); saat_decref(dict); return nil }
        PyTuple_SetItem(pair, 0, ba)
        PyTuple_SetItem(pair, 1, shape)
        let rc = PyDict_SetItemString(dict, key, pair)
        saat_decref(pair)
        if rc != 0 { saat_decref(dict); return nil }
    }
    return dict
}

/// `tensorsToPy` of (name, tensor) pairs, the dict built in their order (a state dict's).
func orderedTensorsToPy(_ pairs: [(String, Tensor)]) -> PyObj? {
    guard let dict = PyDict_New() else { return nil }
    for (name, t) in pairs {
        guard let one = tensorsToPy([name: t]) else { saat_decref(dict); return nil }
        let item = PyDict_GetItemString(one, name)   // borrowed
        let rc = PyDict_SetItemString(dict, name, item!)
        saat_decref(one)
        if rc != 0 { saat_decref(dict); return nil }
    }
    return dict
}

/// Calls `body(key, value)` for every item of the dict passed as `argName` (borrowed references);
/// TypeError naming the argument when it is not a dict (`what` says what it should hold) or a key
/// is not a str.
func forEachItem(ofDict obj: PyObj, _ argName: String, _ what: String, _ body: (String, PyObj) throws -> Void) throws {
    guard PyDict_Check_(obj) else { throw typeError("argument '\(argName)': expected a dict of \(what), got \(typeName(obj))") }
    var pos: Py_ssize_t = 0
    var key: PyObj? = nil, value: PyObj? = nil
    while PyDict_Next(obj, &pos, &key, &value) != 0 {
        guard let key, let value, saat_is_unicode(key) != 0, let c = PyUnicode_AsUTF8(key) else {
            PyErr_Clear()
            throw typeError("argument '\(argName)': keys must be str")
        }
        try body(String(cString: c), value)
    }
}

/// Reads a Python dict name → float32 array (any shape, C-contiguous) into tensors (copied).
func tensorsFromPy(_ obj: PyObj, _ argName: String) throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    try forEachItem(ofDict: obj, argName, "name -> float32 array") { name, value in
        out[name] = try f32(value, "\(argName)['\(name)']") { v in Tensor(shape: v.shape, copying: v.constPtr) }
    }
    return out
}

func PyDict_Check_(_ o: PyObj) -> Bool { saat_is_dict(o) != 0 }
