import CPython

// Module init for saat._core: the method tables of every bridge file, concatenated.
// The table and the module definition live for the life of the process (never freed).

nonisolated(unsafe) private var moduleDef: UnsafeMutablePointer<PyModuleDef>? = nil

@_cdecl("PyInit__core")
public func PyInit__core() -> UnsafeMutablePointer<PyObject>? {
    if moduleDef == nil {
        var table: [PyMethodDef] = []
        table += kernelMethods
        table += modelMethods
        table += lossMethods
        table += trainingMethods
        table += metricMethods
        table += codeMethods
        table += attackMethods
        table += generatorMethods
        table += schemaMethods
        table.append(PyMethodDef(ml_name: nil, ml_meth: nil, ml_flags: 0, ml_doc: nil))   // sentinel
        let methods = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: table.count)
        methods.initialize(from: table, count: table.count)
        let def = UnsafeMutablePointer<PyModuleDef>.allocate(capacity: 1)
        def.initialize(to: PyModuleDef(
            m_base: saat_moduledef_head_init(), m_name: strdup("saat._core"),
            m_doc: strdup("Swift core of saat (HashKernels + SAATCore)."), m_size: -1,
            m_methods: methods, m_slots: nil, m_traverse: nil, m_clear: nil, m_free: nil))
        moduleDef = def
    }
    guard let module = PyModule_Create2(moduleDef, PYTHON_API_VERSION) else { return nil }
    // saat._core.TrainingDiverged: raised when a training's loss becomes NaN/inf (a ValueError,
    // so code that caught the old ValueError still does).
    if trainingDivergedType == nil {
        trainingDivergedType = PyErr_NewExceptionWithDoc(
            "saat._core.TrainingDiverged",
            "A training stopped because its loss became NaN or infinite (the learning rate is too large); "
            + "the model's weights may be non-finite: reload a state_dict or a checkpoint.",
            saat_exc_value_error(), nil)
    }
    guard let exc = trainingDivergedType else { saat_decref(module); return nil }
    saat_incref(exc)
    if PyModule_AddObject(module, "TrainingDiverged", exc) != 0 {
        saat_decref(exc); saat_decref(module); return nil
    }
    return module
}
