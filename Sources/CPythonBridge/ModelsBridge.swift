import CPython
import SAATCore

// saat._core entry points for SAATCore/Models (saat.models in Python).

let modelMethods: [PyMethodDef] = [
]
