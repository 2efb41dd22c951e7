/* data: TREC run files, byte for byte. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/kd_data.h"

Test(data, trec_run_file_has_the_exact_trec_eval_format)
{
    char path[] = "/tmp/kd-trec-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    const char *qids[2] = {"q1", "PLAIN-7"}, *docids[4] = {"d0", "MED-10", "doc#2", "x"};
    size_t ranked[6] = {1, 3, 0, 2, SIZE_MAX, SIZE_MAX};
    float scores[6] = {12.5f, 0.1f, -3.0f, 1e-7f, 0, 0};
    struct kd_error err = {0};
    cr_assert_eq(kd_trec_write_run(path, qids, 2, docids, 4, ranked, scores, 3, "kd-dual", &err), KD_OK, "%s",
                 err.msg);
    char *text;
    size_t len;
    cr_assert_eq(kd_read_file(path, &text, &len, &err), KD_OK);
    cr_assert_str_eq(text, "q1 Q0 MED-10 1 12.5 kd-dual\n"
                           "q1 Q0 x 2 0.100000001 kd-dual\n"
                           "q1 Q0 d0 3 -3 kd-dual\n"
                           "PLAIN-7 Q0 doc#2 1 1.00000001e-07 kd-dual\n");
    free(text);
    remove(path);
}

Test(data, trec_run_file_refuses_ids_with_white_space_before_writing)
{
    const char *qids[1] = {"q 1"}, *docids[1] = {"d0"};
    size_t ranked[1] = {0};
    float scores[1] = {1};
    struct kd_error err = {0};
    cr_assert_eq(kd_trec_write_run("/tmp/kd-never-written.run", qids, 1, docids, 1, ranked, scores, 1, "t", &err),
                 KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "/tmp/kd-never-written.run: query id 0 'q 1' holds white space");
    cr_assert_neq(access("/tmp/kd-never-written.run", F_OK), 0);
    qids[0] = "q1";
    cr_assert_eq(kd_trec_write_run("/tmp/kd-never-written.run", qids, 1, docids, 1, ranked, scores, 1, "", &err),
                 KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "/tmp/kd-never-written.run: the run tag '' is empty");
}
