import CPython
import SAATCore

// saat._core entry points for SAATCore/Codes (saat.codes in Python).

let codeMethods: [PyMethodDef] = [
]
