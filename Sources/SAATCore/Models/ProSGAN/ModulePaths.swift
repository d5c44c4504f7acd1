import HashKernels

/// A network's layers by their PyTorch module path (e.g. "feature.0", "main.2"), so that its
/// `state_dict` carries the official code's names: each layer contributes its parameters
/// ("weight", "bias"), a `ResidualBlock` its `namedParams`, a `SpectralNorm` its parameters and
/// power-iteration buffers. `renames` maps a layer-local name to the official one (ProS-GAN's
/// own spectral norm calls the unnormalised weight "weight_bar" where PyTorch's says
/// "weight_orig").
struct ModulePaths {
    private(set) var modules: [(path: String, layer: Layer)] = []
    var renames: [String: String] = [:]

    mutating func add(_ path: String, _ layer: Layer) { modules.append((path, layer)) }

    private static func entries(_ l: Layer) -> [(String, Tensor)] {
        switch l {
        case let sn as SpectralNorm: return sn.stateDict()
        case let rb as ResidualBlock: return rb.namedParams.map { ($0.name, $0.param.value) }
        default: return l.params.map { ($0.name, $0.value) }
        }
    }

    private func key(_ path: String, _ local: String) -> String { "\(path).\(renames[local] ?? local)" }

    /// (name, tensor) in module order, then each module's own order (PyTorch's for these layers).
    func stateDict(prefix: String = "") -> [(String, Tensor)] {
        modules.flatMap { m in Self.entries(m.layer).map { (prefix + key(m.path, $0.0), $0.1) } }
    }

    /// The names `stateDict` gives.
    func names(prefix: String = "") -> [String] { stateDict(prefix: prefix).map(\.0) }

    /// Loads every entry of `stateDict(prefix:)` from `dict` (entries with other names are the
    /// caller's to check). Names, shapes and finiteness are checked before anything is written.
    func load(_ dict: [String: Tensor], prefix: String = "", argument: String) throws {
        var subs: [[String: Tensor]] = []
        for m in modules {
            var sub: [String: Tensor] = [:]
            for (local, t) in Self.entries(m.layer) {
                let k = prefix + key(m.path, local)
                guard let v = dict[k] else { throw SAATError.invalidArgument(argument, "an entry '\(k)'") }
                guard v.shape == t.shape else {
                    throw SAATError.invalidArgument(argument, "'\(k)' of shape \(t.shape), got \(v.shape)")
                }
                guard v.allFinite else { throw SAATError.invalidArgument(argument, "finite values in '\(k)'") }
                sub[local] = v
            }
            subs.append(sub)
        }
        for (m, sub) in zip(modules, subs) {
            switch m.layer {
            case let sn as SpectralNorm: try sn.loadStateDict(sub, argument: argument)
            case let rb as ResidualBlock: for (n, p) in rb.namedParams { p.value = sub[n]! }
            default: for p in m.layer.params { p.value = sub[p.name]! }
            }
        }
    }

    var params: [Param] { modules.flatMap { $0.layer.params } }
}
