#ifndef SAAT_CBLAS_SHIM_H
#define SAAT_CBLAS_SHIM_H
/* Debian's libopenblas-dev: <cblas.h> is OpenBLAS's (pthreads build), which also declares
   openblas_get_config / openblas_get_num_threads / openblas_set_num_threads. */
#include <cblas.h>
#endif
