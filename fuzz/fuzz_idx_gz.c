/* The IDX harness with both files gzip-compressed before loading
 * (fuzz/fuzz_idx.c). */
#define KD_FUZZ_GZIP 1
#include "fuzz/fuzz_idx.c"
