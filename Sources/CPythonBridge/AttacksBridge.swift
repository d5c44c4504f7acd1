import CPython
import SAATCore

// saat._core entry points for SAATCore/Attacks (saat.attacks in Python).

let attackMethods: [PyMethodDef] = [
]
