import CPython
import SAATCore

// saat._core entry points for SAATCore/Losses (saat.losses in Python).

let lossMethods: [PyMethodDef] = [
]
