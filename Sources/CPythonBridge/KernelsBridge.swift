import CPython
import SAATCore

// saat._core entry points for the raw kernels (saat.kernels in Python).

/// sgemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
/// out ← alpha·op(a)·op(b) + beta·out, float32, C-contiguous, OpenBLAS.
let sgemmFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("sgemm", args, nargs, kw, names: ["a", "b", "out", "trans_a", "trans_b", "alpha", "beta"], required: 3)
        let ta = try a.bool("trans_a", false), tb = try a.bool("trans_b", false)
        let alpha = Float(try a.finite("alpha", 1)), beta = Float(try a.finite("beta", 0))
        try f32(a.required("a"), "a", shape: [nil, nil]) { A in
            try f32(a.required("b"), "b", shape: [nil, nil]) { B in
                let m = ta ? A.dim(1) : A.dim(0), k = ta ? A.dim(0) : A.dim(1)
                let kb = tb ? B.dim(1) : B.dim(0), n = tb ? B.dim(0) : B.dim(1)
                if k != kb {
                    throw valueError("argument 'b': inner dimensions differ: op(a) is (\(m), \(k)), op(b) is (\(kb), \(n))")
                }
                try f32(a.required("out"), "out", shape: [m, n], writable: true) { C in
                    withoutGIL {
                        BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha,
                                   a: A.constPtr, lda: A.dim(1), b: B.constPtr, ldb: B.dim(1),
                                   beta: beta, c: C.ptr, ldc: n)
                    }
                }
            }
        }
        return saat_none()
    }
}

/// conv2d(x, weight, bias, out, stride=1, padding=0): out ← conv2d(x, weight) + bias on NCHW float32
/// (x (N, C, H, W), weight (O, C, k, k), bias (O), out (N, O, OH, OW)), the kernel the conv layers use.
let conv2dFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("conv2d", args, nargs, kw, names: ["x", "weight", "bias", "out", "stride", "padding"], required: 4)
        let stride = try a.int("stride", 1), padding = try a.int("padding", 0)
        try require(stride >= 1 && stride <= 1 << 16, "stride", "an int in [1, 65536], got \(stride)")
        try require(padding >= 0 && padding <= 1 << 16, "padding", "an int in [0, 65536], got \(padding)")
        try f32(a.required("x"), "x", shape: [nil, nil, nil, nil]) { X in
            try require(X.dim(1) >= 1 && X.dim(2) >= 1 && X.dim(3) >= 1, "x", "at least one channel, row and column, got \(shapeString(X.shape))")
            try f32(a.required("weight"), "weight", shape: [nil, X.dim(1), nil, nil]) { Wt in
                let k = Wt.dim(2)
                try require(Wt.dim(0) >= 1 && k >= 1 && Wt.dim(3) == k, "weight",
                            "a square kernel of at least one output channel and size 1, got \(shapeString(Wt.shape))")
                try require(X.dim(2) + 2 * padding >= k && X.dim(3) + 2 * padding >= k, "weight", "a kernel no larger than the padded input")
                let g = Conv2DGeometry(batch: X.dim(0), inChannels: X.dim(1), height: X.dim(2), width: X.dim(3),
                                       outChannels: Wt.dim(0), kernel: k, stride: stride, padding: padding)
                try f32(a.required("bias"), "bias", shape: [g.outChannels]) { B in
                    try f32(a.required("out"), "out", shape: g.outputShape, writable: true) { Y in
                        withoutGIL {
                            Conv2D.forward(x: X.constPtr, weight: Wt.constPtr, bias: B.constPtr, y: Y.ptr, geometry: g)
                        }
                    }
                }
            }
        }
        return saat_none()
    }
}

/// pack_codes(codes, out): ±1 codes (n, K) int8 → packed bits (n, ⌈K/64⌉) uint64.
let packCodesFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("pack_codes", args, nargs, kw, names: ["codes", "out"], required: 2)
        try withArray(a.required("codes"), "codes", .int8, as: Int8.self, shape: [nil, nil]) { c in
            let n = c.dim(0), bits = c.dim(1)
            try require(bits > 0, "codes", "at least one bit per code")
            try withArray(a.required("out"), "out", .uint64, as: UInt64.self, shape: [n, Hamming.words(bits)], writable: true) { o in
                withoutGIL { Hamming.pack(codes: c.constPtr, n: n, bits: bits, out: o.ptr) }
            }
        }
        return saat_none()
    }
}

/// hamming_distances(query, database, out): ±1 int8 codes (nq, K), (nd, K) → int32 (nq, nd).
let hammingDistancesFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        let a = try Args("hamming_distances", args, nargs, kw, names: ["query", "database", "out"], required: 3)
        try withArray(a.required("query"), "query", .int8, as: Int8.self, shape: [nil, nil]) { q in
            let bits = q.dim(1)
            try require(bits > 0, "query", "codes with at least one bit")
            try withArray(a.required("database"), "database", .int8, as: Int8.self, shape: [nil, bits]) { d in
                let nq = q.dim(0), nd = d.dim(0), w = Hamming.words(bits)
                try withArray(a.required("out"), "out", .int32, as: Int32.self, shape: [nq, nd], writable: true) { o in
                    withoutGIL {
                        var qp = [UInt64](repeating: 0, count: nq * w)
                        var dp = [UInt64](repeating: 0, count: nd * w)
                        Hamming.pack(codes: q.constPtr, n: nq, bits: bits, out: &qp)
                        Hamming.pack(codes: d.constPtr, n: nd, bits: bits, out: &dp)
                        Hamming.distances(query: qp, nq: nq, database: dp, nd: nd, words: w, out: o.ptr)
                    }
                }
            }
        }
        return saat_none()
    }
}

/// info() → dict: version, BLAS config and core name, BLAS threads, kernel threads, target CPU.
let infoFn: PyFastKwFn = { _, args, nargs, kw in
    bridged {
        _ = try Args("info", args, nargs, kw, names: [], required: 0)
        return pyDict([
            ("core_version", pyStr(SAATCoreInfo.version)),
            ("blas", pyStr(BLAS.config)),
            ("blas_core", pyStr(BLAS.coreName)),
            ("blas_threads", pyInt(BLAS.threads)),
            ("threads", pyInt(ParallelFor.computeThreads)),
            ("target_cpu", pyStr(BuildInfo.targetCPU)),
        ])
    }
}

/// The body of the two thread-count setters: parses `n`, checks it lies in `lo...256`, calls `set`.
func setThreadCount(_ fn: String, _ args: UnsafePointer<PyObj?>?, _ nargs: Py_ssize_t, _ kw: PyObj?,
                    lo: Int, _ expected: String, _ set: (Int) -> Void) -> PyObj? {
    bridged {
        let n = try Args(fn, args, nargs, kw, names: ["n"], required: 1).int("n")
        try require(n >= lo && n <= 256, "n", "\(expected), got \(n)")
        set(n)
        return saat_none()
    }
}

/// set_blas_threads(n): sets the OpenBLAS thread count used by the core outside model calls.
let setBlasThreadsFn: PyFastKwFn = { _, args, nargs, kw in
    setThreadCount("set_blas_threads", args, nargs, kw, lo: 1, "a thread count in 1...256") { BLAS.setThreads($0) }
}

/// set_threads(n): worker threads of the network kernels (`ParallelFor.computeThreads`); 0 = all CPUs.
let setThreadsFn: PyFastKwFn = { _, args, nargs, kw in
    setThreadCount("set_threads", args, nargs, kw, lo: 0, "a thread count in 0...256 (0 = all CPUs)") {
        ParallelFor.setComputeThreads($0)
    }
}

let kernelMethods: [PyMethodDef] = [
    method("sgemm", sgemmFn, "sgemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0)"),
    method("conv2d", conv2dFn, "conv2d(x, weight, bias, out, stride=1, padding=0)"),
    method("pack_codes", packCodesFn, "pack_codes(codes, out)"),
    method("hamming_distances", hammingDistancesFn, "hamming_distances(query, database, out)"),
    method("info", infoFn, "info() -> dict"),
    method("set_blas_threads", setBlasThreadsFn, "set_blas_threads(n)"),
    method("set_threads", setThreadsFn, "set_threads(n)"),
]
