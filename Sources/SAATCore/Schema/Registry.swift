/// Every algorithm of the core, by kind, in the order the papers' tables list them. The bridge
/// exports their schemas (`saat._core.schemas()`); the Python API and the CLI build their classes,
/// choices and options from them.
public enum Registry {
    public static let attacks: [AttackSpec] = [
        PGDAttack.spec, SAATAttack.spec, CenterAttack.spec, HAGAttack.spec, SDHAAttack.spec,
        DHTAAttack.spec, P2PAttack.spec, THAAttack.spec,
    ]
    /// Attacks that are trained generators.
    public static let generators: [Schema] = [ProSGAN.schema]
    /// Clean training ("hashing") and the adversarial-training defences.
    public static let trainings: [TrainingSpec] = [HashTraining.spec, SAATTraining.spec, CgATTraining.spec, ATRDHTraining.spec]
    public static let losses: [LossSpec] = [DPSHLoss.spec, DPHLoss.spec, HashNetLoss.spec, DSDHLoss.spec, DCHLoss.spec, CSQLoss.spec]
    public static let backbones: [Schema] = Backbone.allCases.map(\.schema)

    /// Every schema, by kind in the order above.
    public static var schemas: [Schema] {
        attacks.map(\.schema) + generators + trainings.map(\.schema) + losses.map(\.schema) + backbones
    }

    /// `argument`: the Python argument that named the entry.
    public static func attack(_ name: String, argument: String = "name") throws -> AttackSpec {
        try find(attacks, \.schema, name, argument)
    }
    public static func training(_ name: String, argument: String = "method") throws -> TrainingSpec {
        try find(trainings, \.schema, name, argument)
    }
    /// `argument`: the Python argument that named the loss ("loss" for training, "name" for
    /// `saat.losses.hash_loss`).
    public static func loss(_ name: String, argument: String = "loss") throws -> LossSpec {
        try find(losses, \.schema, name, argument)
    }

    /// The schema of `kind` (a `Schema.Kind` raw value) called `name`; errors name 'kind' and 'name'.
    public static func schema(kind: String, name: String) throws -> Schema {
        guard let k = Schema.Kind(rawValue: kind) else {
            throw SAATError.invalidArgument("kind", "one of " + Schema.Kind.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
                                            + ", got '\(kind)'")
        }
        return try find(schemas.filter { $0.kind == k }, \.self, name, "name")
    }

    /// The entry called `name`; an unknown name throws `invalidArgument(argument, …)` listing them.
    static func find<T>(_ entries: [T], _ schema: KeyPath<T, Schema>, _ name: String, _ argument: String) throws -> T {
        guard let e = entries.first(where: { $0[keyPath: schema].name == name }) else {
            let names = entries.map { "'\($0[keyPath: schema].name)'" }.joined(separator: ", ")
            throw SAATError.invalidArgument(argument, "one of \(names), got '\(name)'")
        }
        return e
    }
}
