/// P2P, the point-to-point targeted attack of Bai et al. (ECCV 2020): DHTA with a single anchor
/// item (n_t = 1), i.e. the code of one random database item carrying the target label is the
/// target (SAAT `attack.py`). Same loss, schedule and ε = 0.032 as `DHTAAttack`.
public enum P2PAttack {
    public static let schema = Schema(
        .attack, "p2p", python: "P2P",
        summary: "P2P (Bai et al., ECCV 2020): DHTA with one anchor item, the code of a random database item of the target label.",
        inputs: [AttackParameters.dbCodes, AttackParameters.dbLabels],
        parameters: DHTAAttack.schema.parameters.filter { $0.name != "n_t" })
    public static let spec = AttackSpec(schema: schema) { bits, inputs, s, _ in try DHTAAttack.prepare(schema, bits, inputs, s, anchorCount: 1) }
}
