/// Errors raised by the core. The bridge maps each case to one Python exception type in one place
/// (`raise(_:)` in CPythonBridge/Bridge.swift): invalidArgument → ValueError, interrupted →
/// KeyboardInterrupt, io → OSError, corrupt → ValueError, busy → RuntimeError,
/// unexpectedArgument → TypeError, diverged → saat.TrainingDiverged (a ValueError).
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
    /// `owner` (a Python class or function) has no parameter `argument`; `known` are the ones it has.
    case unexpectedArgument(_ argument: String, owner: String, known: [String])
    /// A training run stopped because its loss became NaN or infinite (a learning rate too large):
    /// the loss value, epoch and batch where it happened.
    case diverged(loss: Double, epoch: Int, batch: Int)
    /// Data-parallel training: this process stopped after `batch` of `epoch` because another
    /// process of the run stopped there (its own error says why); `batch` −1: before the first
    /// batch, while the training set was encoded.
    case peerStopped(epoch: Int, batch: Int)

    public var description: String {
        switch self {
        case let .invalidArgument(a, e): return "argument '\(a)': expected \(e)"
        case .interrupted: return "interrupted"
        case let .io(p, r): return "\(p): \(r)"
        case let .corrupt(p, r): return "\(p): \(r)"
        case let .busy(w): return "\(w) is in use by another thread"
        case let .unexpectedArgument(a, owner, known):
            return "\(owner)() got an unexpected keyword argument '\(a)' (its parameters: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case let .diverged(loss, epoch, batch):
            return "argument 'lr': expected a learning rate that keeps the loss finite: loss became \(loss) at epoch \(epoch), batch \(batch)"
        case let .peerStopped(_, batch) where batch < 0:
            return "stopped before training: another process of the data-parallel run stopped while the training set was encoded (its error says why)"
        case let .peerStopped(epoch, batch):
            return "stopped after epoch \(epoch), batch \(batch): another process of the data-parallel run stopped there (its error says why)"
        }
    }
}

/// Throws `invalidArgument(name, expected)` unless `condition` holds.
@inlinable
public func require(_ condition: Bool, _ name: String, _ expected: @autoclosure () -> String) throws {
    if !condition { throw SAATError.invalidArgument(name, expected()) }
}
