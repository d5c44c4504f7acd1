/// The parameters of every algorithm, declared once.
///
/// Each attack, defence, training recipe, hashing loss and backbone has a `Schema`: its registry
/// name, the Python class or function that exposes it, its data inputs (arrays such as training
/// codes) and its hyper-parameters with their Python name, type, range, default and a one-line
/// description. Everything else derives from it:
/// - `Schema.resolve` fills defaults and checks types and ranges, throwing
///   `SAATError.invalidArgument` with the parameter's Python name (the bridge calls it once per
///   construction; the algorithm then reads validated `Settings`);
/// - the bridge exports every schema (`saat._core.schemas()`), from which the Python classes take
///   their signatures, defaults and parameter documentation, and the CLI its choices and options;
/// - `Registry` lists the schemas by kind.
public struct Schema: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// `generative`: an attack that is a trained network (ProS-GAN), not an iterative one.
        case attack, generative, defence, training, loss, backbone
    }

    /// A data argument (an array), passed positionally after the model, in this order.
    public struct Input: Sendable {
        public let name: String
        public let doc: String
        public init(_ name: String, _ doc: String) { self.name = name; self.doc = doc }
    }

    public let kind: Kind
    /// Registry name ("pgd", "saat", "dpsh", "cnn-small").
    public let name: String
    /// The Python class or function that exposes it ("PGD", "SAATTraining", "train").
    public let python: String
    /// One line: what it is and where it comes from.
    public let summary: String
    public let inputs: [Input]
    public let parameters: [Parameter]
    /// Backbones only: the (C, H, W) of one input image; nil for the other kinds.
    public let inputShape: [Int]?

    public init(_ kind: Kind, _ name: String, python: String, summary: String, inputs: [Input] = [],
                parameters: [Parameter], inputShape: [Int]? = nil) {
        precondition(Set(parameters.map(\.name)).count == parameters.count, "\(name): duplicate parameter")
        self.kind = kind; self.name = name; self.python = python; self.summary = summary
        self.inputs = inputs; self.parameters = parameters; self.inputShape = inputShape
    }

    public func parameter(_ name: String) -> Parameter? { parameters.first { $0.name == name } }

    /// Checks `given` (Python name → value) against the parameters: unknown names, wrong types and
    /// values outside their range throw `invalidArgument` naming the parameter; omitted ones take
    /// their default. An int is accepted for a float parameter.
    public func resolve(_ given: [String: Value]) throws -> Settings {
        for key in given.keys.sorted() where parameter(key) == nil {
            throw SAATError.unexpectedArgument(key, owner: python, known: parameters.map(\.name))
        }
        var values: [String: Value] = [:]
        for p in parameters { values[p.name] = try given[p.name].map(p.check) ?? p.defaultValue }
        return Settings(schema: name, values: values)
    }

}

/// A value of a parameter, as it crosses the bridge.
public enum Value: Sendable, Equatable, CustomStringConvertible {
    case int(Int), float(Double), bool(Bool), string(String), floats([Double])

    public var description: String {
        switch self {
        case let .int(v): return "\(v)"
        case let .float(v): return "\(v)"
        case let .bool(v): return v ? "True" : "False"
        case let .string(v): return "'\(v)'"
        case let .floats(v): return "(" + v.map { "\($0)" }.joined(separator: ", ") + (v.count == 1 ? ",)" : ")")
        }
    }
}

/// One hyper-parameter: Python name, type and range, default, one-line description.
public struct Parameter: Sendable {
    public enum Kind: Sendable, Equatable {
        /// An int in `range`.
        case int(ClosedRange<Int>)
        /// A finite float in [lower, upper] (an open end excludes it).
        case float(lower: Double, upper: Double, lowerOpen: Bool, upperOpen: Bool)
        case bool
        /// One of the given strings.
        case choice([String])
        /// A sequence of fractions in (0, 1) (learning-rate milestones).
        case fractions
    }

    public let name: String
    public let kind: Kind
    public let defaultValue: Value
    public let doc: String

    public init(_ name: String, _ kind: Kind, _ defaultValue: Value, _ doc: String) {
        self.name = name; self.kind = kind; self.defaultValue = defaultValue; self.doc = doc
    }

    public static func int(_ name: String, _ value: Int, _ range: ClosedRange<Int>, _ doc: String) -> Parameter {
        Parameter(name, .int(range), .int(value), doc)
    }
    /// A float in [min, max]; `lowerOpen`/`upperOpen` exclude the ends.
    public static func float(_ name: String, _ value: Double, min lower: Double, max upper: Double = .infinity,
                             lowerOpen: Bool = false, upperOpen: Bool = false, _ doc: String) -> Parameter {
        Parameter(name, .float(lower: lower, upper: upper, lowerOpen: lowerOpen, upperOpen: upperOpen), .float(value), doc)
    }
    public static func bool(_ name: String, _ value: Bool, _ doc: String) -> Parameter {
        Parameter(name, .bool, .bool(value), doc)
    }
    public static func choice(_ name: String, _ value: String, _ choices: [String], _ doc: String) -> Parameter {
        Parameter(name, .choice(choices), .string(value), doc)
    }
    public static func fractions(_ name: String, _ value: [Double], _ doc: String) -> Parameter {
        Parameter(name, .fractions, .floats(value), doc)
    }

    /// What a valid value looks like, for messages and documentation ("an int in [1, 1000]").
    public var expected: String {
        switch kind {
        case let .int(r):
            if r.upperBound == Int.max { return "an int >= \(r.lowerBound)" }
            return "an int in [\(r.lowerBound), \(r.upperBound)]"
        case let .float(lo, hi, lo0, hi0):
            if hi == .infinity { return "a finite float \(lo0 ? ">" : ">=") \(Parameter.format(lo))" }
            return "a float in \(lo0 ? "(" : "[")\(Parameter.format(lo)), \(Parameter.format(hi))\(hi0 ? ")" : "]")"
        case .bool: return "a bool"
        case let .choice(c): return "one of " + c.map { "'\($0)'" }.joined(separator: ", ")
        case .fractions: return "fractions of the run in (0, 1)"
        }
    }

    /// A float as Python prints it for short values ("0.5", "1", "1e-05").
    public static func format(_ x: Double) -> String {
        if x == x.rounded() && abs(x) < 1e15 { return String(Int(x)) }
        return "\(x)"
    }

    /// `v` if it is a valid value of this parameter (an int converted for a float parameter).
    public func check(_ v: Value) throws -> Value {
        func bad(_ got: String) -> SAATError { .invalidArgument(name, "\(expected), got \(got)") }
        switch (kind, v) {
        case let (.int(r), .int(x)):
            guard r.contains(x) else { throw bad("\(x)") }
            return v
        case let (.float(lo, hi, lo0, hi0), .float(x)):
            guard x.isFinite, lo0 ? x > lo : x >= lo, hi0 ? x < hi : x <= hi else { throw bad("\(x)") }
            // The core computes in float32: a larger magnitude would silently become inf.
            guard abs(x) <= Double(Float.greatestFiniteMagnitude) else {
                throw SAATError.invalidArgument(name, "\(expected) that float32 can hold (|value| <= 3.4e38), got \(x)")
            }
            return v
        case (.float, .int(let x)):
            return try check(.float(Double(x)))
        case (.bool, .bool):
            return v
        case let (.choice(c), .string(s)):
            guard c.contains(s) else { throw bad("'\(s)'") }
            return v
        case let (.fractions, .floats(f)):
            guard f.allSatisfy({ $0.isFinite && $0 > 0 && $0 < 1 }) else { throw bad("\(v)") }
            return v
        default:
            throw bad("\(v)")
        }
    }
}

/// Validated values of one algorithm's parameters (`Schema.resolve`). Reading a name the schema
/// does not declare, or with the wrong type, is a programming error (trap).
public struct Settings: Sendable {
    public let schema: String
    public let values: [String: Value]

    private func typed<T>(_ name: String, _ what: String, _ extract: (Value) -> T?) -> T {
        guard let v = values[name] else { preconditionFailure("\(schema): no parameter '\(name)' in its schema") }
        guard let t = extract(v) else { preconditionFailure("\(schema).\(name) is not \(what)") }
        return t
    }
    public func int(_ name: String) -> Int { typed(name, "an int") { if case let .int(v) = $0 { return v }; return nil } }
    public func double(_ name: String) -> Double { typed(name, "a float") { if case let .float(v) = $0 { return v }; return nil } }
    public func float(_ name: String) -> Float { Float(double(name)) }
    public func bool(_ name: String) -> Bool { typed(name, "a bool") { if case let .bool(v) = $0 { return v }; return nil } }
    public func string(_ name: String) -> String { typed(name, "a str") { if case let .string(v) = $0 { return v }; return nil } }
    public func fractions(_ name: String) -> [Double] {
        typed(name, "a sequence") { if case let .floats(v) = $0 { return v }; return nil }
    }
    public func has(_ name: String) -> Bool { values[name] != nil }
}
