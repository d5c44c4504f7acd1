import CPython
import SAATCore

// Swift objects owned by Python through PyCapsules. The capsule holds one retained reference;
// its destructor releases it. A capsule's name states the Swift type, so a handle of the wrong
// kind is rejected with a TypeError instead of being reinterpreted.

final class Box<T> {
    let value: T
    init(_ v: T) { value = v }
}

let modelCapsuleName: UnsafeMutablePointer<CChar> = strdup("saat.HashingModel")

private let releaseModelCapsule: @convention(c) (PyObj?) -> Void = { cap in
    guard let cap, let p = PyCapsule_GetPointer(cap, modelCapsuleName) else { PyErr_Clear(); return }
    Unmanaged<HashingModel>.fromOpaque(p).release()
}

func makeModelCapsule(_ m: HashingModel) -> PyObj? {
    let p = Unmanaged.passRetained(m).toOpaque()
    guard let cap = PyCapsule_New(p, modelCapsuleName, releaseModelCapsule) else {
        Unmanaged<HashingModel>.fromOpaque(p).release()
        return nil
    }
    return cap
}

/// The model behind a handle argument (borrowed; the capsule keeps it alive for the call, and
/// the returned strong reference keeps it alive across a GIL release).
func modelArg(_ a: Args, _ name: String = "model") throws -> HashingModel {
    let o = try a.required(name)
    guard PyCapsule_IsValid(o, modelCapsuleName) == 1, let p = PyCapsule_GetPointer(o, modelCapsuleName) else {
        PyErr_Clear()
        throw typeError("argument '\(name)': expected a saat model handle (HashingModel._handle), got \(typeName(o))")
    }
    return Unmanaged<HashingModel>.fromOpaque(p).takeUnretainedValue()
}

let prototypeCapsuleName: UnsafeMutablePointer<CChar> = strdup("saat.PrototypeNet")

private let releasePrototypeCapsule: @convention(c) (PyObj?) -> Void = { cap in
    guard let cap, let p = PyCapsule_GetPointer(cap, prototypeCapsuleName) else { PyErr_Clear(); return }
    Unmanaged<PrototypeNet>.fromOpaque(p).release()
}

func makePrototypeCapsule(_ m: PrototypeNet) -> PyObj? {
    let p = Unmanaged.passRetained(m).toOpaque()
    guard let cap = PyCapsule_New(p, prototypeCapsuleName, releasePrototypeCapsule) else {
        Unmanaged<PrototypeNet>.fromOpaque(p).release()
        return nil
    }
    return cap
}

func prototypeArg(_ a: Args, _ name: String = "prototype") throws -> PrototypeNet {
    let o = try a.required(name)
    guard PyCapsule_IsValid(o, prototypeCapsuleName) == 1, let p = PyCapsule_GetPointer(o, prototypeCapsuleName) else {
        PyErr_Clear()
        throw typeError("argument '\(name)': expected a saat prototype-network handle, got \(typeName(o))")
    }
    return Unmanaged<PrototypeNet>.fromOpaque(p).takeUnretainedValue()
}

/// Callbacks into Python from a loop running without the GIL: each call takes the GIL, checks
/// for signals (Ctrl-C) and calls the Python callable; any Python exception is kept pending and
/// the loop is told to stop, so the bridge returns it once the loop has unwound.
final class PythonCallbacks {
    private(set) var failed = false

    /// Checks signals (with the GIL) and returns true when the caller should stop.
    func shouldStop() -> Bool {
        if failed { return true }
        let g = PyGILState_Ensure()
        defer { PyGILState_Release(g) }
        if PyErr_CheckSignals() != 0 { failed = true }
        return failed
    }

    /// Calls `fn(*args)` built by `makeArgs` (with the GIL); returns false when the caller should
    /// stop (exception raised, signal pending, or the callable returned False).
    func call(_ fn: PyObj?, _ makeArgs: () -> PyObj?) -> Bool {
        if failed { return false }
        let g = PyGILState_Ensure()
        defer { PyGILState_Release(g) }
        if PyErr_CheckSignals() != 0 { failed = true; return false }
        guard let fn else { return true }
        guard let args = makeArgs() else { failed = true; return false }
        defer { saat_decref(args) }
        guard let r = PyObject_CallObject(fn, args) else { failed = true; return false }
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

/// Reads a Python dict name → float32 array (any shape, C-contiguous) into tensors (copied).
func tensorsFromPy(_ obj: PyObj, _ argName: String) throws -> [String: Tensor] {
    guard PyDict_Check_(obj) else { throw typeError("argument '\(argName)': expected a dict of name -> float32 array, got \(typeName(obj))") }
    var out: [String: Tensor] = [:]
    var pos: Py_ssize_t = 0
    var key: PyObj? = nil, value: PyObj? = nil
    while PyDict_Next(obj, &pos, &key, &value) != 0 {
        guard let key, let value, saat_is_unicode(key) != 0, let c = PyUnicode_AsUTF8(key) else {
            PyErr_Clear()
            throw typeError("argument '\(argName)': keys must be str")
        }
        let name = String(cString: c)
        let t: Tensor = try f32(value, "\(argName)['\(name)']") { v in
            Tensor(shape: v.shape, data: Array(UnsafeBufferPointer(start: v.constPtr, count: v.count)))
        }
        out[name] = t
    }
    return out
}

func PyDict_Check_(_ o: PyObj) -> Bool { saat_is_dict(o) != 0 }
