// swift-tools-version:6.0
// saat: Swift core of a Python library for robust deep-hashing retrieval.
//
// The product `_core` is a dynamic library that *is* the CPython extension module
// `saat._core` (setup.py copies lib_core.so to saat/_core.<EXT_SUFFIX>).
//
// Environment knobs (setup.py sets the Python ones from the building interpreter):
//   PYTHON_INCLUDE      include dir holding Python.h (default: ask `python3` on PATH)
//   SAAT_TARGET_CPU     LLVM CPU name for the kernels: default "haswell" (AVX2 + FMA);
//                       "baseline" builds for the generic x86-64 CPU; e.g. "znver4", "skylake-avx512".
import PackageDescription
import Foundation

func pythonConfig(_ expr: String, env key: String) -> String {
    if let p = ProcessInfo.processInfo.environment[key], !p.isEmpty { return p }
    let proc = Process()
    proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    proc.arguments = ["python3", "-c", "import sysconfig; print(\(expr))"]
    let pipe = Pipe()
    proc.standardOutput = pipe
    do { try proc.run(); proc.waitUntilExit() } catch { return "" }
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    return out.trimmingCharacters(in: .whitespacesAndNewlines)
}

let pyInclude = pythonConfig("sysconfig.get_paths()['include']", env: "PYTHON_INCLUDE")
let pySettings: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-I\(pyInclude)"])]

let requestedCPU = ProcessInfo.processInfo.environment["SAAT_TARGET_CPU"] ?? "haswell"
let targetCPU = (requestedCPU == "baseline" || requestedCPU.isEmpty) ? "x86-64" : requestedCPU
#if arch(x86_64)
let cpuFlags: [String] = ["-target-cpu", targetCPU]
#else
let cpuFlags: [String] = []
#endif
// The CPU name is compiled into the core so saat.info() can report it.
let kernelSettings: [SwiftSetting] = [
    .unsafeFlags(cpuFlags + ["-enforce-exclusivity=unchecked"]),
    .define("SAAT_CPU_\(targetCPU.replacingOccurrences(of: "-", with: "_"))"),
]

let package = Package(
    name: "saat",
    products: [
        .library(name: "_core", type: .dynamic, targets: ["CPythonBridge"]),
    ],
    targets: [
        .systemLibrary(name: "CPython", path: "Sources/CPython"),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .target(name: "HashKernels", dependencies: ["CBLAS"], swiftSettings: kernelSettings),
        .target(name: "SAATCore", dependencies: ["HashKernels"], swiftSettings: kernelSettings),
        .target(name: "CPythonBridge", dependencies: ["CPython", "SAATCore", "HashKernels"],
                swiftSettings: pySettings + kernelSettings),
        // Rounding-error bounds the two test targets derive their tolerances from.
        .target(name: "NumericBounds", path: "Tests/NumericBounds"),
        .testTarget(name: "HashKernelsTests", dependencies: ["HashKernels", "NumericBounds"]),
        .testTarget(name: "SAATCoreTests", dependencies: ["SAATCore", "HashKernels", "NumericBounds"]),
    ],
    swiftLanguageModes: [.v5]
)
