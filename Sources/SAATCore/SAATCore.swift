@_exported import HashKernels

/// Version of the Swift core; the Python package reports it in `saat.info()`.
public enum SAATCoreInfo {
    public static let version = "0.1.0"
}
