/// Errors raised by the core. The bridge maps each case to one Python exception type in
/// one place (`CPythonBridge/Errors.swift`): invalidArgument → ValueError,
/// interrupted → KeyboardInterrupt, io → OSError, corrupt → ValueError, busy → RuntimeError.
public enum SAATError: Error, Equatable, CustomStringConvertible {
    /// `argument` did not satisfy `expected` (e.g. ("eps", "a finite value ≥ 0, got -1")).
    case invalidArgument(_ argument: String, _ expected: String)
    /// A long computation stopped because the caller asked (e.g. Ctrl-C between batches).
    case interrupted
    /// File-system failure with path and reason.
    case io(_ path: String, _ reason: String)
    /// A checkpoint or weight file that cannot be read back.
    case corrupt(_ path: String, _ reason: String)
    /// An object is in use by another thread.
    case busy(_ what: String)

    public var description: String {
        switch self {
        case let .invalidArgument(a, e): return "argument '\(a)': expected \(e)"
        case .interrupted: return "interrupted"
        case let .io(p, r): return "\(p): \(r)"
        case let .corrupt(p, r): return "\(p): \(r)"
        case let .busy(w): return "\(w) is in use by another thread"
        }
    }
}

/// Throws `invalidArgument(name, expected)` unless `condition` holds.
@inlinable
public func require(_ condition: Bool, _ name: String, _ expected: @autoclosure () -> String) throws {
    if !condition { throw SAATError.invalidArgument(name, expected()) }
}
