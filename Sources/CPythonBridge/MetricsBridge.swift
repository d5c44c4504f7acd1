import CPython
import SAATCore

// saat._core entry points for SAATCore/Metrics (saat.metrics in Python).

let metricMethods: [PyMethodDef] = [
]
