import CPython
import SAATCore

// saat._core entry points for SAATCore/Training (saat.training in Python).

let trainingMethods: [PyMethodDef] = [
]
