/* What a launcher (mpirun, srun) told this process, read from its
 * environment without starting MPI: in both builds, so that a kd without
 * MPI can refuse to run as one of several copies. */
#include "dist/kd_dist.h"

#include <stdlib.h>

int kd_dist_launched_size(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        long n = v ? strtol(v, NULL, 10) : 0;
        if (n > 1)
            return n > 1000000 ? 1000000 : (int)n;
    }
    return 1;
}
