/// Bit-packed binary codes and popcount Hamming distances.
///
/// A K-bit code in {-1, +1}^K is packed into `words(K) = ⌈K/64⌉` UInt64 words: bit j of
/// word j/64 is 1 for +1 and 0 for −1; padding bits past K are 0 in every code, so they never
/// contribute to a distance. d_H(a, b) = popcount(a XOR b) = ½(K − aᵀb) for ±1 codes.
public enum Hamming {
    /// Number of UInt64 words a `bits`-bit code occupies.
    @inlinable public static func words(_ bits: Int) -> Int { (bits + 63) / 64 }

    /// Packs n codes of `bits` values each (row-major; a value > 0 is +1, anything else —
    /// including 0 and NaN — is −1) into `out`, which holds n · words(bits) words. Branch-free.
    @inlinable
    public static func pack<T: Comparable & ExpressibleByIntegerLiteral>(
        codes: UnsafePointer<T>, n: Int, bits: Int, out: UnsafeMutablePointer<UInt64>) {
        let w = words(bits)
        for i in 0..<n {
            let src = codes + i * bits
            let dst = out + i * w
            for j in 0..<w {
                var word: UInt64 = 0
                let lo = j * 64, hi = min(bits, lo + 64)
                for b in lo..<hi { word |= UInt64(src[b] > 0 ? 1 : 0) << UInt64(b - lo) }
                dst[j] = word
            }
        }
    }

    /// out[i, j] = d_H(query i, database j) for nq × nd packed codes of `w` words each.
    public static func distances(query: UnsafePointer<UInt64>, nq: Int,
                                 database: UnsafePointer<UInt64>, nd: Int, words w: Int,
                                 out: UnsafeMutablePointer<Int32>) {
        for i in 0..<nq {
            rowDistances(query: query + i * w, database: database, nd: nd, words: w, out: out + i * nd)
        }
    }

    /// Distances of one packed query to every database code.
    @inlinable
    public static func rowDistances(query q: UnsafePointer<UInt64>, database: UnsafePointer<UInt64>,
                                    nd: Int, words w: Int, out: UnsafeMutablePointer<Int32>) {
        switch w {
        case 1:
            let q0 = q[0]
            for j in 0..<nd { out[j] = Int32((q0 ^ database[j]).nonzeroBitCount) }
        case 2:
            let q0 = q[0], q1 = q[1]
            for j in 0..<nd {
                let d = database + 2 * j
                out[j] = Int32((q0 ^ d[0]).nonzeroBitCount + (q1 ^ d[1]).nonzeroBitCount)
            }
        default:
            for j in 0..<nd {
                let d = database + w * j
                var s = 0
                for t in 0..<w { s += (q[t] ^ d[t]).nonzeroBitCount }
                out[j] = Int32(s)
            }
        }
    }
}
