/* student: training a dual encoder from a teacher's candidate scores and
 * embeddings (kd_dual_distill): one SGD step against finite differences of
 * the whole objective, learning the teacher's ranking, the frozen document
 * side, the projection through save and load, and the refusals. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "retrieval_test.h"
#include "student/kd_student.h"

enum { NQ = 6, ND = 12, L = 3, BUCKETS = 32, ET = 4 };

struct fx {
    struct kd_features fq, fd;
    size_t q[NQ], doc[NQ * L];
    float t[NQ * L], w[NQ];
    int8_t rel[NQ * L];
    struct kd_tensor tq, td;
    struct kd_cand_lists cl;
};

static void fx_init(struct fx *x, uint64_t seed)
{
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    random_features(&x->fq, NQ, BUCKETS, 4, 0, &r);
    random_features(&x->fd, ND, BUCKETS, 5, 0, &r);
    for (size_t i = 0; i < NQ; i++) {
        x->q[i] = i;
        x->w[i] = 0.5f + 0.25f * (float)i;
        for (size_t j = 0; j < L; j++) {
            x->doc[i * L + j] = (i * 2 + j * 5) % ND;
            x->t[i * L + j] = (float)(2.0 * kd_rng_normal(&r));
            x->rel[i * L + j] = (int8_t)(j == 0 && i % 3 != 2); /* every third query has no gold */
        }
    }
    struct kd_error err;
    cr_assert_eq(kd_tensor_init(&x->tq, NQ, ET, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&x->td, ND, ET, &err), KD_OK);
    for (size_t i = 0; i < NQ * ET; i++)
        x->tq.data[i] = (float)kd_rng_normal(&r);
    for (size_t i = 0; i < ND * ET; i++)
        x->td.data[i] = (float)kd_rng_normal(&r);
    struct kd_cand_lists cl = {NQ, L, x->q, x->doc, x->t, x->rel, x->w};
    x->cl = cl;
}

static void fx_release(struct fx *x)
{
    kd_features_release(&x->fq);
    kd_features_release(&x->fd);
    kd_tensor_release(&x->tq);
    kd_tensor_release(&x->td);
}

static struct kd_dual *student(int shared, size_t hidden, uint64_t seed)
{
    struct kd_dual_config c;
    kd_dual_config_init(&c);
    c.buckets = BUCKETS;
    c.E = 5;
    c.shared = shared;
    c.n_layers = hidden ? 1 : 0;
    c.hidden[0] = hidden;
    struct kd_dual *m;
    struct kd_error err;
    cr_assert_eq(kd_dual_new(&c, seed, &m, &err), KD_OK, "%s", err.msg);
    return m;
}

/* The objective kd_dual_distill minimises, for all lists in one batch,
 * written again from the public pieces (the batch order does not change it). */
static double objective(struct kd_dual *m, const struct fx *x, const struct kd_dual_distill_config *c)
{
    size_t O = kd_dual_dim(m), Bd = NQ * L;
    int32_t gold[NQ];
    for (size_t i = 0; i < NQ; i++)
        gold[i] = x->rel[i * L] ? (int32_t)(i * L) : -1;
    const float *q, *d;
    float S[NQ * NQ * L], D[NQ * L * 8];
    if (c->frozen_docs) {
        cr_assert_not_null(kd_dual_forward(m, &x->fq, x->q, NQ, &x->fd, x->doc, 0));
        kd_dual_outputs(m, &q, &d);
        for (size_t j = 0; j < Bd; j++)
            memcpy(D + j * O, kd_tensor_row(c->frozen_docs, x->doc[j]), O * sizeof(float));
        kd_sgemm_ref(0, 1, NQ, Bd, O, 1.0f, q, O, D, O, 0.0f, S, Bd);
        d = D;
    } else {
        memcpy(S, kd_dual_forward(m, &x->fq, x->q, NQ, &x->fd, x->doc, Bd), sizeof S);
        kd_dual_outputs(m, &q, &d);
    }
    double l = c->score_weight * kd_loss_rank_distill_inbatch(&c->loss, S, Bd, x->t, x->rel, gold, x->w, NQ, L, NULL);
    float pq[NQ * ET], pd[NQ * L * ET], wd[NQ * L];
    float y[NQ * L * ET];
    if (c->lambda_q > 0) {
        kd_dual_project(m, q, NQ, pq);
        l += c->lambda_q * kd_loss_embed_l2(pq, c->teacher_q->data, x->w, NQ, ET, NULL);
    }
    if (c->lambda_d > 0 && !c->frozen_docs) {
        kd_dual_project(m, d, Bd, pd);
        for (size_t j = 0; j < Bd; j++) {
            memcpy(y + j * ET, kd_tensor_row(c->teacher_d, x->doc[j]), ET * sizeof(float));
            wd[j] = x->w[j / L];
        }
        l += c->lambda_d * kd_loss_embed_l2(pd, y, wd, Bd, ET, NULL);
    }
    return l;
}

static double fd_at(struct kd_dual *m, const struct fx *x, const struct kd_dual_distill_config *c, float *p)
{
    float save = *p, up_v = save + 1e-3f, down_v = save - 1e-3f;
    *p = up_v;
    double up = objective(m, x, c);
    *p = down_v;
    double down = objective(m, x, c);
    *p = save;
    return (up - down) / ((double)up_v - (double)down_v);
}

/* One step of plain SGD at rate 1 over every list moves each parameter by
 * minus its gradient: compare that move with finite differences. */
static void check_step(const char *name, int shared, enum kd_rank_loss loss, int frozen)
{
    struct fx x;
    fx_init(&x, 5);
    struct kd_dual *a = student(shared, 3, 9), *b = student(shared, 3, 9);
    struct kd_error err;
    cr_assert_eq(kd_dual_projection_init(a, ET, 4, &err), KD_OK);
    cr_assert_eq(kd_dual_projection_init(b, ET, 4, &err), KD_OK);
    struct kd_tensor frozen_docs;
    cr_assert_eq(kd_tensor_init(&frozen_docs, ND, 3, &err), KD_OK);
    for (size_t i = 0; i < ND * 3; i++)
        frozen_docs.data[i] = (float)sin((double)i);
    struct kd_dual_distill_config c;
    kd_dual_distill_config_init(&c);
    c.train.epochs = 1;
    c.train.batch = NQ;
    c.train.optim.kind = KD_OPTIM_SGD;
    c.train.optim.lr = 1.0f;
    c.train.table.kind = KD_OPTIM_SGD;
    c.train.table.lr = 1.0f;
    c.loss.loss = loss;
    c.loss.T = 1.5f;
    c.loss.alpha = 0.5f;
    c.teacher_q = &x.tq;
    c.teacher_d = &x.td;
    c.lambda_q = 0.5f;
    c.lambda_d = frozen ? 0.0f : 0.3f;
    c.frozen_docs = frozen ? &frozen_docs : NULL;
    cr_assert_eq(kd_dual_distill(a, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_OK, "%s", err.msg);
    double worst = 0.0;
    size_t np = b->n_params, npj = ET * (3 + 1);
    for (size_t i = 0; i < np; i++) {
        double g = fd_at(b, &x, &c, &b->params[i]), moved = (double)b->params[i] - a->params[i];
        worst = fmax(worst, fabs(g - moved));
        cr_assert(fabs(g - moved) < 2e-3 * (1 + fabs(g)), "%s: dense %zu: fd %g step %g", name, i, g, moved);
    }
    for (size_t i = 0; i < npj; i++) {
        double g = fd_at(b, &x, &c, &b->proj[i]), moved = (double)b->proj[i] - a->proj[i];
        cr_assert(fabs(g - moved) < 2e-3 * (1 + fabs(g)), "%s: projection %zu: fd %g step %g", name, i, g, moved);
    }
    for (size_t t = 0; t < (shared ? 1u : 2u); t++)
        for (size_t i = 0; i < (size_t)BUCKETS * 5; i += 3) {
            float *p = &b->tower[t].bag.w[i];
            double g = fd_at(b, &x, &c, p), moved = (double)*p - a->tower[t].bag.w[i];
            cr_assert(fabs(g - moved) < 2e-3 * (1 + fabs(g)), "%s: table %zu entry %zu: fd %g step %g", name, t, i, g,
                      moved);
        }
    fprintf(stderr, "%s: largest |fd - step| over dense parameters %.3g\n", name, worst);
    kd_tensor_release(&frozen_docs);
    kd_dual_free(a);
    kd_dual_free(b);
    fx_release(&x);
}

Test(student, dual_distill_step_is_the_gradient_of_the_whole_objective)
{
    check_step("separate, MSE", 0, KD_RLOSS_MSE, 0);
    check_step("shared, Margin-MSE", 1, KD_RLOSS_MARGIN_MSE, 0);
    check_step("separate, listwise KL", 0, KD_RLOSS_LISTWISE_KL, 0);
    check_step("shared, M3SE", 1, KD_RLOSS_M3SE, 0);
    check_step("asymmetric, M3SE", 1, KD_RLOSS_M3SE, 1);
}

/* The fraction of lists whose top candidate is the teacher's. */
static double top1_agreement(struct kd_dual *m, const struct kd_features *fq, const struct kd_features *fd,
                             const size_t *q, const size_t *doc, const float *t, size_t n, size_t Lc)
{
    size_t hit = 0;
    for (size_t i = 0; i < n; i++) {
        const float *s = kd_dual_forward(m, fq, q + i, 1, fd, doc + i * Lc, Lc);
        hit += kd_argmax(s, Lc) == kd_argmax(t + i * Lc, Lc);
    }
    return (double)hit / (double)n;
}

Test(student, dual_distill_learns_the_teachers_ranking_with_every_loss, .timeout = 120)
{
    /* the teacher: a random dual encoder; lists of 8 candidates, no gold */
    enum { Q = 120, D = 200, LC = 8 };
    struct kd_rng r;
    kd_rng_seed(&r, 17);
    struct kd_features fq, fd;
    random_features(&fq, Q, 256, 6, 0, &r);
    random_features(&fd, D, 256, 8, 0, &r);
    struct kd_dual_config tcfg;
    kd_dual_config_init(&tcfg);
    tcfg.buckets = 256;
    tcfg.E = 16;
    struct kd_dual *teacher;
    struct kd_error err;
    cr_assert_eq(kd_dual_new(&tcfg, 3, &teacher, &err), KD_OK);
    size_t *q = malloc(Q * sizeof *q), *doc = malloc(Q * LC * sizeof *doc);
    float *t = malloc(Q * LC * sizeof *t);
    for (size_t i = 0; i < Q; i++) {
        q[i] = i;
        for (size_t j = 0; j < LC; j++)
            doc[i * LC + j] = (size_t)kd_rng_below(&r, D);
        const float *s = kd_dual_forward(teacher, &fq, q + i, 1, &fd, doc + i * LC, LC);
        for (size_t j = 0; j < LC; j++)
            t[i * LC + j] = 20.0f * s[j];
    }
    struct kd_cand_lists cl = {Q, LC, q, doc, t, NULL, NULL};
    for (int l = 0; l < KD_RLOSS_COUNT; l++) {
        struct kd_dual_config sc = tcfg;
        sc.E = 8;
        sc.shared = 1;
        struct kd_dual *m;
        cr_assert_eq(kd_dual_new(&sc, 11, &m, &err), KD_OK);
        double before = top1_agreement(m, &fq, &fd, q, doc, t, Q, LC);
        struct kd_dual_distill_config c;
        kd_dual_distill_config_init(&c);
        c.train.epochs = 40;
        c.train.batch = 16;
        c.loss.loss = (enum kd_rank_loss)l;
        c.loss.T = 1.0f;
        cr_assert_eq(kd_dual_distill(m, &fq, &fd, &cl, &c, NULL, &err), KD_OK, "%s", err.msg);
        double after = top1_agreement(m, &fq, &fd, q, doc, t, Q, LC);
        fprintf(stderr, "%s: top-1 agreement with the teacher %.3f -> %.3f\n", kd_rank_loss_name(c.loss.loss), before,
                after);
        cr_assert_gt(after, before + 0.25, "%s: %.3f -> %.3f", kd_rank_loss_name(c.loss.loss), before, after);
        kd_dual_free(m);
    }
    free(q);
    free(doc);
    free(t);
    kd_dual_free(teacher);
    kd_features_release(&fq);
    kd_features_release(&fd);
}

Test(student, asymmetric_distill_leaves_the_document_tower_bit_identical)
{
    struct fx x;
    fx_init(&x, 6);
    /* the teacher's document tower gives the frozen embeddings, once */
    struct kd_dual *teacher = student(0, 3, 21);
    struct kd_error err;
    struct kd_tensor D, Dcopy, tq;
    cr_assert_eq(kd_tensor_init(&D, ND, 3, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&Dcopy, ND, 3, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&tq, NQ, 3, &err), KD_OK);
    cr_assert_eq(kd_dual_encode(teacher, KD_SIDE_DOC, &x.fd, &D, &err), KD_OK);
    cr_assert_eq(kd_dual_encode(teacher, KD_SIDE_QUERY, &x.fq, &tq, &err), KD_OK);
    memcpy(Dcopy.data, D.data, ND * 3 * sizeof(float));
    size_t tab = (size_t)BUCKETS * 5;
    float *table = malloc(tab * sizeof *table), *params = malloc(teacher->n_params * sizeof *params);
    memcpy(table, teacher->tower[1].bag.w, tab * sizeof *table);
    memcpy(params, teacher->params, teacher->n_params * sizeof *params);

    struct kd_dual *m = student(1, 3, 22);
    struct kd_dual_distill_config c;
    kd_dual_distill_config_init(&c);
    c.train.epochs = 30;
    c.train.batch = 2;
    c.loss.loss = KD_RLOSS_M3SE;
    c.teacher_q = &tq;
    c.lambda_q = 1.0f;
    c.frozen_docs = &D;
    float before[NQ * 3], after[NQ * 3];
    struct kd_tensor qe = {.data = before, .rows = NQ, .cols = 3};
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_QUERY, &x.fq, &qe, &err), KD_OK);
    cr_assert_eq(kd_dual_distill(m, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_OK, "%s", err.msg);
    qe.data = after;
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_QUERY, &x.fq, &qe, &err), KD_OK);
    cr_assert_eq(memcmp(D.data, Dcopy.data, ND * 3 * sizeof(float)), 0, "the frozen embeddings changed");
    cr_assert_eq(memcmp(teacher->tower[1].bag.w, table, tab * sizeof *table), 0, "the teacher's table changed");
    cr_assert_eq(memcmp(teacher->params, params, teacher->n_params * sizeof *params), 0);
    /* the query tower moved toward the teacher's query embeddings (the identity: both are 3 wide) */
    cr_assert_null(m->proj);
    double d0 = kd_loss_embed_l2(before, tq.data, NULL, NQ, 3, NULL), d1 = kd_loss_embed_l2(after, tq.data, NULL, NQ, 3, NULL);
    cr_assert_lt(d1, 0.5 * d0, "query embeddings: distance %g -> %g", d0, d1);
    free(table);
    free(params);
    kd_tensor_release(&D);
    kd_tensor_release(&Dcopy);
    kd_tensor_release(&tq);
    kd_dual_free(teacher);
    kd_dual_free(m);
    fx_release(&x);
}

Test(student, distill_projection_round_trips_through_save_and_load)
{
    struct fx x;
    fx_init(&x, 7);
    struct kd_dual *m = student(0, 3, 31);
    struct kd_dual_distill_config c;
    kd_dual_distill_config_init(&c);
    c.train.epochs = 2;
    c.teacher_q = &x.tq;
    c.teacher_d = &x.td;
    c.lambda_q = c.lambda_d = 1.0f;
    struct kd_error err;
    cr_assert_eq(kd_dual_distill(m, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(m->proj_out, (size_t)ET, "the trainer makes the (4, 3) projection the widths need");
    char path[] = "/tmp/kd-distill-proj-XXXXXX";
    int fdesc = mkstemp(path);
    cr_assert_geq(fdesc, 0);
    close(fdesc);
    cr_assert_eq(kd_dual_save(m, path, "kd-text-v1 buckets=5 seed=1 words=1 chars=0", &err), KD_OK, "%s", err.msg);
    struct kd_dual *back;
    char *fz;
    cr_assert_eq(kd_dual_load(path, &back, &fz, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(back->proj_out, (size_t)ET);
    cr_assert_eq(memcmp(back->proj, m->proj, ET * (3 + 1) * sizeof(float)), 0);
    float y0[NQ * ET], y1[NQ * ET];
    float e0[NQ * 3], e1[NQ * 3];
    struct kd_tensor t0 = {.data = e0, .rows = NQ, .cols = 3}, t1 = {.data = e1, .rows = NQ, .cols = 3};
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_QUERY, &x.fq, &t0, &err), KD_OK);
    cr_assert_eq(kd_dual_encode(back, KD_SIDE_QUERY, &x.fq, &t1, &err), KD_OK);
    cr_assert_eq(memcmp(e0, e1, sizeof e0), 0);
    kd_dual_project(m, e0, NQ, y0);
    kd_dual_project(back, e1, NQ, y1);
    cr_assert_eq(memcmp(y0, y1, sizeof y0), 0);
    /* a file without a projection still loads (no 'projection' or '0') */
    struct kd_dual *plain = student(0, 3, 32);
    cr_assert_eq(kd_dual_save(plain, path, NULL, &err), KD_OK);
    kd_dual_free(back);
    cr_assert_eq(kd_dual_load(path, &back, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_null(back->proj);
    kd_dual_free(back);
    kd_dual_free(plain);
    free(fz);
    remove(path);
    kd_dual_free(m);
    fx_release(&x);
}

Test(student, dual_distill_refuses_bad_lists_and_settings)
{
    struct fx x;
    fx_init(&x, 8);
    struct kd_dual *m = student(0, 0, 41);
    struct kd_dual_distill_config c;
    kd_dual_distill_config_init(&c);
    struct kd_error err;
    x.doc[4] = ND;
    cr_assert_eq(kd_dual_distill(m, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "candidate 1 of list 1 names document text 12 of 12");
    x.doc[4] = 0;
    x.q[2] = NQ;
    cr_assert_eq(kd_dual_distill(m, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "list 2 names query text 6 of 6");
    x.q[2] = 2;
    c.loss.alpha = 2.0f;
    cr_assert_eq(kd_dual_distill(m, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "distillation loss: alpha must be in [0, 1], got 2");
    c.loss.alpha = 1.0f;
    c.teacher_d = &x.tq; /* 6 rows for 12 documents */
    c.lambda_d = 1.0f;
    cr_assert_eq(kd_dual_distill(m, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "teacher document embeddings have 6 rows for 12 document texts");
    c.teacher_d = NULL;
    c.frozen_docs = &x.td;
    cr_assert_eq(kd_dual_distill(m, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "an asymmetric student (frozen documents) trains one tower: give it shared towers");
    struct kd_dual *s = student(1, 0, 42);
    cr_assert_eq(kd_dual_distill(s, &x.fq, &x.fd, &x.cl, &c, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "frozen document embeddings are (12, 4); the student needs (12, 5)");
    struct kd_cand_lists empty = {0, L, x.q, x.doc, x.t, NULL, NULL};
    c.frozen_docs = NULL;
    cr_assert_eq(kd_dual_distill(s, &x.fq, &x.fd, &empty, &c, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "no candidate lists to distil from (0 lists of 3)");
    cr_assert_eq(kd_dual_projection_init(s, 0, 1, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "a projection's width must be 1 to 65536, got 0");
    kd_dual_free(s);
    kd_dual_free(m);
    fx_release(&x);
}

Test(student, dual_load_refuses_a_projection_of_the_wrong_shape)
{
    struct kd_dual *m = student(1, 3, 51);
    struct kd_error err;
    cr_assert_eq(kd_dual_projection_init(m, 4, 1, &err), KD_OK);
    char path[] = "/tmp/kd-distill-badproj-XXXXXX";
    int fdesc = mkstemp(path);
    cr_assert_geq(fdesc, 0);
    close(fdesc);
    cr_assert_eq(kd_dual_save(m, path, NULL, &err), KD_OK);
    /* rewrite the metadata to claim a 5-wide projection */
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    uint64_t hlen;
    cr_assert_eq(fread(&hlen, 8, 1, f), 1);
    char *h = malloc(hlen + 1);
    cr_assert_eq(fread(h, 1, hlen, f), hlen);
    h[hlen] = 0;
    char *p = strstr(h, "\"projection\":\"4\"");
    cr_assert_not_null(p, "%s", h);
    p[14] = '5';
    fseek(f, 8, SEEK_SET);
    fwrite(h, 1, hlen, f);
    fclose(f);
    free(h);
    struct kd_dual *back;
    cr_assert_neq(kd_dual_load(path, &back, NULL, &err), KD_OK);
    cr_assert(strstr(err.msg, "': tensor 'proj.weight' has shape [4, 3], expected [5, 3]"), "%s", err.msg);
    fprintf(stderr, "wrong projection: %s\n", err.msg);
    remove(path);
    kd_dual_free(m);
}
