import CPython
import SAATCore

// The thin layer between CPython and SAATCore: argument unpacking, zero-copy buffer
// views with dtype/shape/contiguity checks that name the argument, GIL release, and the
// one place where Swift errors become Python exceptions. No algorithm lives here.

public typealias PyObj = UnsafeMutablePointer<PyObject>
/// METH_FASTCALL | METH_KEYWORDS signature.
typealias PyFastKwFn = @convention(c) (PyObj?, UnsafePointer<PyObj?>?, Py_ssize_t, PyObj?) -> PyObj?

// MARK: exceptions

@discardableResult
func raise(_ type: PyObj, _ msg: String) -> PyObj? {
    PyErr_SetString(type, msg)
    return nil
}
@discardableResult func raiseValue(_ msg: String) -> PyObj? { raise(saat_exc_value_error(), msg) }
@discardableResult func raiseType(_ msg: String) -> PyObj? { raise(saat_exc_type_error(), msg) }

/// Sets the Python exception for a Swift error and returns nil (the C-API failure value).
@discardableResult
func raise(_ error: Error) -> PyObj? {
    switch error {
    case let e as SAATError:
        switch e {
        case .invalidArgument: return raise(saat_exc_value_error(), e.description)
        case .interrupted: return raise(saat_exc_keyboard_interrupt(), "interrupted")
        case .io: return raise(saat_exc_os_error(), e.description)
        case .corrupt: return raise(saat_exc_value_error(), e.description)
        case .busy: return raise(saat_exc_runtime_error(), e.description)
        case .diverged: return raise(trainingDivergedType ?? saat_exc_value_error(), e.description)
        case .unexpectedArgument: return raise(saat_exc_type_error(), e.description)
        case .peerStopped: return raise(saat_exc_runtime_error(), e.description)
        }
    case is BridgeError:
        if PyErr_Occurred() == nil { raise(saat_exc_runtime_error(), "saat: internal error without a message") }
        return nil
    default:
        return raise(saat_exc_runtime_error(), "saat core error: \(error)")
    }
}

/// A Python exception is already set (by the C API or by a check here).
struct BridgeError: Error {}

/// Runs `body`, turning thrown errors into the matching Python exception.
@inline(__always)
func bridged(_ body: () throws -> PyObj?) -> PyObj? {
    do { return try body() } catch { return raise(error) }
}

func valueError(_ msg: String) -> BridgeError { raiseValue(msg); return BridgeError() }

/// saat._core.TrainingDiverged (a ValueError subclass), created at module init: a training stopped
/// because its loss became NaN/inf.
nonisolated(unsafe) var trainingDivergedType: PyObj? = nil
func typeError(_ msg: String) -> BridgeError { raiseType(msg); return BridgeError() }
func runtimeError(_ msg: String) -> BridgeError { raise(saat_exc_runtime_error(), msg); return BridgeError() }

// MARK: GIL

/// Runs `work` with the GIL released. `work` must not touch any Python object.
@inline(__always)
func withoutGIL<R>(_ work: () throws -> R) rethrows -> R {
    let ts = PyEval_SaveThread()
    defer { PyEval_RestoreThread(ts) }
    return try work()
}

// MARK: arguments

/// Positional + keyword arguments of a METH_FASTCALL|METH_KEYWORDS call, resolved against
/// the parameter names of the function. Objects are borrowed for the duration of the call.
struct Args {
    let fn: String
    let names: [String]
    private(set) var values: [PyObj?]

    init(_ fn: String, _ args: UnsafePointer<PyObj?>?, _ nargs: Py_ssize_t, _ kwnames: PyObj?,
         names: [String], required: Int) throws {
        self.fn = fn
        self.names = names
        values = [PyObj?](repeating: nil, count: names.count)
        let npos = Int(PyVectorcall_NARGS(Int(nargs)))
        if npos > names.count {
            throw typeError("\(fn)() takes at most \(names.count) positional arguments (\(npos) given)")
        }
        for i in 0..<npos { values[i] = args![i] }
        if let kwnames {
            let nkw = Int(PyTuple_Size(kwnames))
            for j in 0..<nkw {
                guard let keyObj = PyTuple_GetItem(kwnames, j), let cstr = PyUnicode_AsUTF8(keyObj) else {
                    throw BridgeError()
                }
                let key = String(cString: cstr)
                guard let idx = names.firstIndex(of: key) else {
                    throw typeError("\(fn)() got an unexpected keyword argument '\(key)'")
                }
                if values[idx] != nil {
                    throw typeError("\(fn)() got multiple values for argument '\(key)'")
                }
                values[idx] = args![npos + j]
            }
        }
        for i in 0..<required where values[i] == nil {
            throw typeError("\(fn)() missing required argument '\(names[i])'")
        }
    }

    /// The object passed for `name`, nil when omitted or None.
    func obj(_ name: String) -> PyObj? {
        guard let i = names.firstIndex(of: name), let o = values[i], saat_is_none(o) == 0 else { return nil }
        return o
    }

    func has(_ name: String) -> Bool { obj(name) != nil }

    func required(_ name: String) throws -> PyObj {
        guard let o = obj(name) else { throw typeError("\(fn)(): argument '\(name)' is required") }
        return o
    }

    /// A Python int (bool excluded) as Int, or `default` when omitted.
    func int(_ name: String, _ def: Int? = nil) throws -> Int {
        guard let o = obj(name) else {
            if let def { return def }
            throw typeError("\(fn)(): argument '\(name)' is required (an int)")
        }
        if saat_is_long(o) == 0 || saat_is_bool(o) != 0 {
            throw typeError("argument '\(name)': expected an int, got \(typeName(o))")
        }
        var overflow: Int32 = 0
        let v = PyLong_AsLongLongAndOverflow(o, &overflow)
        if overflow != 0 { throw valueError("argument '\(name)': integer out of range") }
        if v == -1, PyErr_Occurred() != nil { throw BridgeError() }
        return Int(v)
    }

    /// A Python float or int as Double, or `default` when omitted.
    func double(_ name: String, _ def: Double? = nil) throws -> Double {
        guard let o = obj(name) else {
            if let def { return def }
            throw typeError("\(fn)(): argument '\(name)' is required (a float)")
        }
        if saat_is_bool(o) != 0 || (saat_is_float(o) == 0 && saat_is_long(o) == 0) {
            throw typeError("argument '\(name)': expected a float, got \(typeName(o))")
        }
        let v = PyFloat_AsDouble(o)
        if v == -1, PyErr_Occurred() != nil { throw BridgeError() }
        return v
    }

    /// A finite float.
    func finite(_ name: String, _ def: Double? = nil) throws -> Double {
        let v = try double(name, def)
        if !v.isFinite { throw valueError("argument '\(name)': expected a finite number, got \(v)") }
        return v
    }

    func bool(_ name: String, _ def: Bool) throws -> Bool {
        guard let o = obj(name) else { return def }
        let r = PyObject_IsTrue(o)
        if r < 0 {
            // The object's __bool__/__len__ raised: say which argument it was.
            PyErr_Clear()
            throw typeError("argument '\(name)': expected a bool, got \(typeName(o)) (its truth value raised an error)")
        }
        return r == 1
    }

    func string(_ name: String, _ def: String? = nil) throws -> String {
        guard let o = obj(name) else {
            if let def { return def }
            throw typeError("\(fn)(): argument '\(name)' is required (a str)")
        }
        guard saat_is_unicode(o) != 0, let c = PyUnicode_AsUTF8(o) else {
            if PyErr_Occurred() != nil { throw BridgeError() }
            throw typeError("argument '\(name)': expected a str, got \(typeName(o))")
        }
        return String(cString: c)
    }

    /// A callable, or nil when omitted/None.
    func callable(_ name: String) throws -> PyObj? {
        guard let o = obj(name) else { return nil }
        if saat_is_callable(o) == 0 { throw typeError("argument '\(name)': expected a callable, got \(typeName(o))") }
        return o
    }
}

func typeName(_ o: PyObj) -> String {
    guard let t = o.pointee.ob_type, let n = t.pointee.tp_name else { return "object" }
    return String(cString: n)
}

// MARK: buffers

/// Element types accepted through the buffer protocol.
enum DType: String {
    case float32, float64, int8, uint8, int32, int64, uint64

    var itemSize: Int {
        switch self {
        case .float32, .int32: return 4
        case .int8, .uint8: return 1
        case .float64, .int64, .uint64: return 8
        }
    }

    /// struct-module format characters (after an optional byte-order prefix) meaning this type.
    var formats: [UInt8] {
        switch self {
        case .float32: return [0x66]              // f
        case .float64: return [0x64]              // d
        case .int8: return [0x62]                 // b
        case .uint8: return [0x42]                // B
        case .int32: return [0x69, 0x6C]          // i, l (when 4 bytes)
        case .int64: return [0x6C, 0x71]          // l, q (when 8 bytes)
        case .uint64: return [0x4C, 0x51]         // L, Q
        }
    }
}

/// Human name of a buffer format string, for error messages ("float64", "int8", …).
func formatName(_ fmt: UnsafeMutablePointer<CChar>?, itemSize: Int) -> String {
    guard let fmt else { return "uint8" }
    var p = UnsafeMutableRawPointer(fmt).assumingMemoryBound(to: UInt8.self)
    if p.pointee == 0x3C || p.pointee == 0x3D || p.pointee == 0x40 || p.pointee == 0x3E || p.pointee == 0x21 { p += 1 }
    switch p.pointee {
    case 0x66: return "float32"
    case 0x64: return "float64"
    case 0x65: return "float16"
    case 0x62: return "int8"
    case 0x42: return "uint8"
    case 0x3F: return "bool"
    case 0x68: return "int16"
    case 0x48: return "uint16"
    case 0x69: return "int32"
    case 0x49: return "uint32"
    case 0x6C, 0x71: return itemSize == 8 ? "int64" : "int32"
    case 0x4C, 0x51: return itemSize == 8 ? "uint64" : "uint32"
    default: return "format '\(String(cString: fmt))'"
    }
}

/// A borrowed, checked, C-contiguous view of a Python buffer. Valid only inside the closure
/// that received it; the pointer may be used with the GIL released (the exporter keeps the
/// memory alive and the view pins it until release).
struct ArrayView<T> {
    let ptr: UnsafeMutablePointer<T>
    let shape: [Int]
    var count: Int { shape.reduce(1, *) }
    var ndim: Int { shape.count }
    func dim(_ i: Int) -> Int { shape[i] }
    var constPtr: UnsafePointer<T> { UnsafePointer(ptr) }
}

/// Shape constraint: nil entries match any size.
typealias ShapeSpec = [Int?]

func describe(_ spec: ShapeSpec) -> String {
    "(" + spec.map { $0.map(String.init) ?? "*" }.joined(separator: ", ") + (spec.count == 1 ? ",)" : ")")
}

/// Acquires `obj` as a C-contiguous buffer of `dtype`, checks ndim/shape, runs `body`.
/// Errors name the argument: TypeError for a wrong type or dtype, ValueError for shape,
/// contiguity or a read-only output.
func withArray<T, R>(_ obj: PyObj, _ name: String, _ dtype: DType, as: T.Type,
                     shape spec: ShapeSpec? = nil, writable: Bool = false,
                     _ body: (ArrayView<T>) throws -> R) throws -> R {
    precondition(MemoryLayout<T>.size == dtype.itemSize)
    var view = Py_buffer()
    // Ask for strides and format (any layout) so the checks below can say exactly what is wrong.
    let flags = PyBUF_STRIDES | PyBUF_FORMAT
    if PyObject_GetBuffer(obj, &view, flags) != 0 {
        PyErr_Clear()
        throw typeError("argument '\(name)': expected a numpy array of \(dtype.rawValue), got \(typeName(obj))")
    }
    defer { PyBuffer_Release(&view) }
    // dtype
    var ok = view.itemsize == dtype.itemSize
    if ok {
        if let fmt = view.format {
            var p = UnsafeMutableRawPointer(fmt).assumingMemoryBound(to: UInt8.self)
            if p.pointee == 0x3C || p.pointee == 0x3D || p.pointee == 0x40 { p += 1 }   // < = @
            ok = dtype.formats.contains(p.pointee) && p[1] == 0
        } else {
            ok = dtype == .uint8
        }
    }
    if !ok {
        throw typeError("argument '\(name)': expected dtype \(dtype.rawValue), got \(formatName(view.format, itemSize: view.itemsize))")
    }
    let nd = Int(view.ndim)
    var shape = [Int](repeating: 0, count: nd)
    for i in 0..<nd { shape[i] = view.shape![i] }
    if let spec {
        if spec.count != nd {
            throw valueError("argument '\(name)': expected a \(spec.count)-d array of shape \(describe(spec)), got \(nd)-d shape \(shapeString(shape))")
        }
        for i in 0..<nd where spec[i] != nil && spec[i]! != shape[i] {
            throw valueError("argument '\(name)': expected shape \(describe(spec)), got \(shapeString(shape))")
        }
    }
    // C-contiguity (dimensions of size 1 may carry any stride).
    if let strides = view.strides {
        var expected = Int(view.itemsize)
        for i in stride(from: nd - 1, through: 0, by: -1) {
            if shape[i] > 1 && strides[i] != expected {
                throw valueError("argument '\(name)': expected a C-contiguous array (use numpy.ascontiguousarray), got strides \(shapeString((0..<nd).map { strides[$0] }))")
            }
            expected *= shape[i]
        }
    }
    if writable && view.readonly != 0 {
        throw valueError("argument '\(name)': output array is read-only")
    }
    let count = shape.reduce(1, *)
    // An empty buffer may have a null or dangling pointer: hand out a valid dummy.
    if count == 0 || view.buf == nil {
        let dummy = UnsafeMutablePointer<T>.allocate(capacity: 1)
        defer { dummy.deallocate() }
        return try body(ArrayView(ptr: dummy, shape: shape))
    }
    if Int(bitPattern: view.buf!) % MemoryLayout<T>.alignment != 0 {
        throw valueError("argument '\(name)': buffer is not aligned for \(dtype.rawValue)")
    }
    return try body(ArrayView(ptr: view.buf!.assumingMemoryBound(to: T.self), shape: shape))
}

func shapeString(_ s: [Int]) -> String {
    "(" + s.map(String.init).joined(separator: ", ") + (s.count == 1 ? ",)" : ")")
}

/// `withArray` for an argument that may be omitted or None (`body` then gets nil).
func optionalArray<T, R>(_ a: Args, _ name: String, _ dtype: DType, as: T.Type, shape: ShapeSpec? = nil,
                         writable: Bool = false, _ body: (ArrayView<T>?) throws -> R) throws -> R {
    guard let o = a.obj(name) else { return try body(nil) }
    return try withArray(o, name, dtype, as: T.self, shape: shape, writable: writable) { try body($0) }
}

func f32<R>(_ obj: PyObj, _ name: String, shape: ShapeSpec? = nil, writable: Bool = false,
            _ body: (ArrayView<Float>) throws -> R) throws -> R {
    try withArray(obj, name, .float32, as: Float.self, shape: shape, writable: writable, body)
}

/// Throws ValueError naming `name` when a float32 buffer holds NaN or ±inf.
func requireFinite(_ v: ArrayView<Float>, _ name: String) throws {
    for i in 0..<v.count where !v.ptr[i].isFinite {
        throw valueError("argument '\(name)': expected finite values, found \(v.ptr[i]) at flat index \(i)")
    }
}

// MARK: results

func pyInt(_ v: Int) -> PyObj? { PyLong_FromLongLong(Int64(v)) }

/// A memoryview of `bytes` bytes at `p` (format 'B'), writable or read-only; valid only while the
/// memory is (the callers pass it to a callable and drop it when the call returns).
func pyMemoryView(_ p: UnsafeMutableRawPointer, bytes: Int, writable: Bool) -> PyObj? {
    // PyBUF_READ = 0x100, PyBUF_WRITE = 0x200 (macros the module map does not import).
    PyMemoryView_FromMemory(p.assumingMemoryBound(to: CChar.self), bytes, writable ? 0x200 : 0x100)
}
func pyFloat(_ v: Double) -> PyObj? { PyFloat_FromDouble(v) }
func pyStr(_ s: String) -> PyObj? { PyUnicode_FromString(s) }

/// A new dict from string keys to new references (stolen); nil on failure with the exception set.
func pyDict(_ items: [(String, PyObj?)]) -> PyObj? {
    guard let d = PyDict_New() else { return nil }
    for (k, v) in items {
        guard let v else { saat_decref(d); return nil }
        let rc = PyDict_SetItemString(d, k, v)
        saat_decref(v)
        if rc != 0 { saat_decref(d); return nil }
    }
    return d
}

/// A new tuple of new references (stolen); nil (the exception set) when any is nil.
func pyTuple(_ items: [PyObj?]) -> PyObj? {
    guard items.allSatisfy({ $0 != nil }), let t = PyTuple_New(items.count) else {
        for i in items { if let i { saat_decref(i) } }
        return nil
    }
    for (i, o) in items.enumerated() { PyTuple_SetItem(t, i, o) }
    return t
}

/// A new list of new references (stolen).
func pyList(_ items: [PyObj?]) -> PyObj? {
    guard let l = PyList_New(items.count) else { return nil }
    for (i, v) in items.enumerated() {
        guard let v else { saat_decref(l); return nil }
        PyList_SetItem(l, i, v)
    }
    return l
}

// MARK: method table

func method(_ name: String, _ fn: PyFastKwFn, _ doc: String) -> PyMethodDef {
    PyMethodDef(ml_name: strdup(name), ml_meth: unsafeBitCast(fn, to: PyCFunction.self),
                ml_flags: METH_FASTCALL | METH_KEYWORDS, ml_doc: strdup(doc))
}
