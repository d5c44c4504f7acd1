import CPython
import SAATCore

// The schemas of SAATCore's registry, out to Python (`schemas()`), and Python keyword values in,
// checked against a schema once (`settingsArg`). Nothing here knows an algorithm's parameters.

/// A Python object for a parameter value (new reference).
private func pyValue(_ v: Value) -> PyObj? {
    switch v {
    case let .int(x): return pyInt(x)
    case let .float(x): return pyFloat(x)
    case let .bool(x): return x ? saat_true() : saat_false()
    case let .string(x): return pyStr(x)
    case let .floats(x): return pyTuple(x.map { pyFloat($0) })
    }
}

private func pyParameter(_ p: Parameter) -> PyObj? {
    var items: [(String, PyObj?)] = [("name", pyStr(p.name)), ("default", pyValue(p.defaultValue)), ("doc", pyStr(p.doc)),
                                     ("expected", pyStr(p.expected))]
    switch p.kind {
    case let .int(r):
        items += [("type", pyStr("int")), ("min", pyInt(r.lowerBound)), ("max", pyInt(r.upperBound))]
    case let .float(lo, hi, lo0, hi0):
        items += [("type", pyStr("float")), ("min", pyFloat(lo)), ("max", pyFloat(hi)),
                  ("min_open", lo0 ? saat_true() : saat_false()), ("max_open", hi0 ? saat_true() : saat_false())]
    case .bool: items.append(("type", pyStr("bool")))
    case let .choice(c): items += [("type", pyStr("choice")), ("choices", pyList(c.map { pyStr($0) }))]
    case .fractions: items.append(("type", pyStr("fractions")))
    }
    return pyDict(items)
}

/// schemas() -> list of dict(kind, name, python, summary, inputs=[dict(name, doc)], input_shape (backbones: [C, H, W]; else None), parameters=[dict(name,
/// type, default, doc, expected, min/max/min_open/max_open or choices)]): every entry of the registry.
let schemasFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        _ = try Args("schemas", args, nargs, kw, names: [], required: 0)
        return pyList(Registry.schemas.map { s in
            pyDict([("kind", pyStr(s.kind.rawValue)), ("name", pyStr(s.name)), ("python", pyStr(s.python)),
                    ("summary", pyStr(s.summary)),
                    ("inputs", pyList(s.inputs.map { pyDict([("name", pyStr($0.name)), ("doc", pyStr($0.doc))]) })),
                    ("parameters", pyList(s.parameters.map(pyParameter))),
                    ("input_shape", s.inputShape.map { pyList($0.map { pyInt($0) }) } ?? saat_none())])
        })
    }
}

/// A Python number (not bool, str or complex) as Double; nil when it is not one.
private func number(_ o: PyObj) -> Double? {
    if saat_is_bool(o) != 0 || saat_is_complex(o) != 0 || saat_is_unicode(o) != 0 || PyNumber_Check(o) == 0 { return nil }
    guard let f = PyNumber_Float(o) else { PyErr_Clear(); return nil }
    defer { saat_decref(f) }
    return PyFloat_AsDouble(f)
}

/// The Python value `o` of parameter `p` as a `Value` of its kind (the range is checked by
/// `Schema.resolve`); TypeError naming the parameter for a value of the wrong type.
private func value(_ o: PyObj, _ p: Parameter) throws -> Value {
    let wrong = { typeError("argument '\(p.name)': expected \(p.expected), got \(typeName(o))") }
    switch p.kind {
    case .int:
        // ints and numpy integers (anything with __index__), never bool.
        guard saat_is_bool(o) == 0, saat_is_index(o) != 0, let i = PyNumber_Index(o) else { PyErr_Clear(); throw wrong() }
        defer { saat_decref(i) }
        var overflow: Int32 = 0
        let v = PyLong_AsLongLongAndOverflow(i, &overflow)
        if overflow != 0 { throw valueError("argument '\(p.name)': expected \(p.expected), got an integer out of range") }
        return .int(Int(v))
    case .float:
        guard let v = number(o) else { throw wrong() }
        return .float(v)
    case .bool:
        // bool, numpy.bool_, or the ints 0 and 1.
        if saat_is_bool(o) != 0 || typeName(o).hasPrefix("numpy.bool") { return .bool(PyObject_IsTrue(o) == 1) }
        if saat_is_bool(o) == 0, saat_is_long(o) != 0 {
            let v = PyLong_AsLongLong(o)
            if PyErr_Occurred() != nil { PyErr_Clear() } else if v == 0 || v == 1 { return .bool(v == 1) }
        }
        throw wrong()
    case .choice:
        guard saat_is_unicode(o) != 0, let c = PyUnicode_AsUTF8(o) else { PyErr_Clear(); throw wrong() }
        return .string(String(cString: c))
    case .fractions:
        guard saat_is_unicode(o) == 0, let seq = PySequence_Fast(o, "") else { PyErr_Clear(); throw wrong() }
        defer { saat_decref(seq) }
        var out: [Double] = []
        for i in 0..<PySequence_Size(seq) {
            guard let item = PySequence_GetItem(seq, i) else { PyErr_Clear(); throw wrong() }
            defer { saat_decref(item) }
            guard let v = number(item) else {
                throw typeError("argument '\(p.name)': expected \(p.expected), got an item of type \(typeName(item))")
            }
            out.append(v)
        }
        return .floats(out)
    }
}

/// Settings of `schema` from the dict passed as argument `argument` (parameter name → value; None
/// or omitted: every default). An unknown name is a TypeError as for any Python call; types are
/// checked here, ranges by `Schema.resolve` (ValueError naming the parameter).
func settingsArg(_ a: Args, _ argument: String, _ schema: Schema) throws -> Settings {
    var given: [String: Value] = [:]
    if let d = a.obj(argument) {
        try forEachItem(ofDict: d, argument, "parameters") { name, val in
            guard let p = schema.parameter(name) else {
                throw SAATError.unexpectedArgument(name, owner: schema.python, known: schema.parameters.map(\.name))
            }
            given[name] = try value(val, p)
        }
    }
    return try schema.resolve(given)
}

/// The resolved settings as a Python dict (name → value), in the schema's order.
func settingsToPy(_ s: Settings, _ schema: Schema) -> PyObj? {
    pyDict(schema.parameters.map { ($0.name, pyValue(s.values[$0.name]!)) })
}

/// resolve(kind, name, params=None) -> dict: the parameters of one registry entry with defaults
/// filled in, checked (TypeError/ValueError naming the parameter) without running anything.
let resolveFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("resolve", args, nargs, kw, names: ["kind", "name", "params"], required: 2)
        let schema = try Registry.schema(kind: try a.string("kind"), name: try a.string("name"))
        return settingsToPy(try settingsArg(a, "params", schema), schema)
    }
}

let schemaMethods: [PyMethodDef] = [
    method("schemas", schemasFn, "schemas() -> list of dict: every algorithm's parameters (SAATCore Registry)"),
    method("resolve", resolveFn, "resolve(kind, name, params=None) -> dict of checked parameters with defaults"),
]
