/* Students as ONNX models, for ONNX Runtime and the other runtimes that read
 * ONNX: an MLP classifier, or one tower of a dual encoder.
 *
 *     kd_mlp_export_onnx(m, "mlp.onnx", &err);
 *     kd_dual_export_onnx(d, KD_SIDE_QUERY, featurizer, "query.onnx", &err);
 *
 * The protobuf messages are protobuf-c's, generated at build time from the
 * onnx.proto Debian ships (build/gen/onnx.pb-c.h): kd fills the structs and
 * protobuf-c encodes them, so kd never writes protobuf bytes by hand.
 * Weights go into the file as raw little-endian float32 (TensorProto.raw_data)
 * straight from the model's arrays, streamed to the file without a copy.
 *
 * Opset 13 (ONNX 1.8, ONNX Runtime 1.6 and later, and most converters and
 * accelerators): everything the students need exists there. GELU is composed
 * from Erf (the Gelu operator only arrived in opset 20), and ReduceSum takes
 * its axes as an input, as it has since opset 13.
 *
 * Functions here are reentrant: each call builds and frees its own graph.
 */
#include "student/kd_student.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ONNX IR version that goes with opset 13 (ONNX 1.8). */
#define ONNX_IR_VERSION 7

/* Enough for the deepest MLP with GELU (6 nodes per layer) and a tower. */
#define MAX_NODES 160
#define MAX_INITS 80
#define MAX_ATTRS 4
#define MAX_META 16

/* A graph under construction. Every allocation is recorded in `pool` and
 * freed by builder_release; `nomem` turns every later call into a no-op so
 * that the code building a graph reads straight through (checked once, at
 * the end). */
struct builder {
    Onnx__NodeProto *nodes[MAX_NODES];
    size_t n_nodes;
    Onnx__TensorProto *inits[MAX_INITS];
    size_t n_inits;
    Onnx__ValueInfoProto *inputs[4], *outputs[4];
    size_t n_inputs, n_outputs;
    Onnx__StringStringEntryProto *meta[MAX_META];
    size_t n_meta;
    void **pool;
    size_t n_pool, cap_pool;
    int nomem;
    unsigned next_name;
};

static void builder_release(struct builder *b)
{
    for (size_t i = 0; i < b->n_pool; i++)
        free(b->pool[i]);
    free(b->pool);
    b->pool = NULL;
    b->n_pool = b->cap_pool = 0;
}

/* n zeroed bytes owned by the builder, or NULL (and b->nomem) when out of memory. */
static void *b_alloc(struct builder *b, size_t n)
{
    if (b->nomem)
        return NULL;
    if (b->n_pool == b->cap_pool) {
        size_t cap = b->cap_pool ? 2 * b->cap_pool : 256;
        void **p = realloc(b->pool, cap * sizeof *p);
        if (!p) {
            b->nomem = 1;
            return NULL;
        }
        b->pool = p;
        b->cap_pool = cap;
    }
    void *q = calloc(1, n ? n : 1);
    if (!q) {
        b->nomem = 1;
        return NULL;
    }
    b->pool[b->n_pool++] = q;
    return q;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static char *b_str(struct builder *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : b_alloc(b, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A fresh tensor name: "<stem>_<n>". */
static char *b_name(struct builder *b, const char *stem)
{
    return b_str(b, "%s_%u", stem, b->next_name++);
}

/* The node op(inputs...) -> out, in graph order; out may be NULL for a fresh
 * name. Returns the node (NULL when out of memory) so attributes can follow. */
static Onnx__NodeProto *b_node(struct builder *b, const char *op, const char *out, size_t n_in, ...)
{
    Onnx__NodeProto *n = b_alloc(b, sizeof *n);
    char **in = b_alloc(b, n_in * sizeof *in), **outs = b_alloc(b, sizeof *outs);
    Onnx__AttributeProto **attrs = b_alloc(b, MAX_ATTRS * sizeof *attrs);
    if (!n || !in || !outs || !attrs)
        return NULL;
    onnx__node_proto__init(n);
    va_list ap;
    va_start(ap, n_in);
    for (size_t i = 0; i < n_in; i++)
        in[i] = (char *)va_arg(ap, const char *);
    va_end(ap);
    outs[0] = out ? b_str(b, "%s", out) : b_name(b, op);
    n->name = b_str(b, "%s_node_%zu", op, b->n_nodes);
    n->op_type = b_str(b, "%s", op);
    n->input = in;
    n->n_input = n_in;
    n->output = outs;
    n->n_output = 1;
    n->attribute = attrs;
    if (b->nomem)
        return NULL;
    if (b->n_nodes == MAX_NODES) { /* a programmer error: MAX_NODES is sized for the largest graph */
        b->nomem = 1;
        return NULL;
    }
    b->nodes[b->n_nodes++] = n;
    return n;
}

/* The name of a node's output ("" after a failure, never NULL). */
static const char *out_of(const Onnx__NodeProto *n)
{
    return n ? n->output[0] : "";
}

static Onnx__AttributeProto *b_attr(struct builder *b, Onnx__NodeProto *n, const char *name,
                                    Onnx__AttributeProto__AttributeType type)
{
    if (!n || n->n_attribute == MAX_ATTRS)
        return NULL;
    Onnx__AttributeProto *a = b_alloc(b, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = b_str(b, "%s", name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_int(struct builder *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = b_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

static void attr_ints(struct builder *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = b_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *ints = b_alloc(b, sizeof *ints);
    if (a && ints) {
        ints[0] = v;
        a->ints = ints;
        a->n_ints = 1;
    }
}

/* An initializer called name, of dims (n_dims) and ONNX element type, whose
 * bytes are `data` (borrowed until the file is written: protobuf-c only reads
 * them, hence the cast). */
static void b_init(struct builder *b, const char *name, int32_t elem, const int64_t *dims, size_t n_dims,
                   const void *data, size_t bytes)
{
    Onnx__TensorProto *t = b_alloc(b, sizeof *t);
    int64_t *d = b_alloc(b, n_dims * sizeof *d);
    if (!t || !d)
        return;
    onnx__tensor_proto__init(t);
    if (n_dims) /* a scalar has no dims (and dims may be NULL) */
        memcpy(d, dims, n_dims * sizeof *d);
    t->dims = d;
    t->n_dims = n_dims;
    t->has_data_type = 1;
    t->data_type = elem;
    t->name = b_str(b, "%s", name);
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = (uint8_t *)(uintptr_t)data;
    if (b->n_inits == MAX_INITS) {
        b->nomem = 1;
        return;
    }
    b->inits[b->n_inits++] = t;
}

/* A float32 scalar initializer (a copy of v, owned by the builder). */
static const char *b_scalar(struct builder *b, const char *name, float v)
{
    float *p = b_alloc(b, sizeof *p);
    if (!p)
        return "";
    *p = v;
    b_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, NULL, 0, p, sizeof *p);
    return name;
}

/* A one-element int64 initializer [v] (axes for Unsqueeze and ReduceSum). */
static const char *b_axes(struct builder *b, const char *name, int64_t v)
{
    int64_t *p = b_alloc(b, sizeof *p), one = 1;
    if (!p)
        return "";
    *p = v;
    b_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &one, 1, p, sizeof *p);
    return name;
}

/* A graph input or output of element type elem and shape dims, where a
 * negative dim is the symbolic dimension named by params[i]. */
static Onnx__ValueInfoProto *b_value(struct builder *b, const char *name, const char *doc, int32_t elem,
                                     const int64_t *dims, const char *const *params, size_t n_dims)
{
    Onnx__ValueInfoProto *v = b_alloc(b, sizeof *v);
    Onnx__TypeProto *tp = b_alloc(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = b_alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = b_alloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dd = b_alloc(b, n_dims * sizeof *dd);
    if (!v || !tp || !tt || !sh || !dd)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (size_t i = 0; i < n_dims; i++) {
        Onnx__TensorShapeProto__Dimension *d = b_alloc(b, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = b_str(b, "%s", params[i]);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dd[i] = d;
    }
    sh->dim = dd;
    sh->n_dim = n_dims;
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->type = tp;
    v->name = b_str(b, "%s", name);
    v->doc_string = b_str(b, "%s", doc);
    return v;
}

static void b_input(struct builder *b, Onnx__ValueInfoProto *v)
{
    if (v)
        b->inputs[b->n_inputs++] = v;
}

static void b_output(struct builder *b, Onnx__ValueInfoProto *v)
{
    if (v)
        b->outputs[b->n_outputs++] = v;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void b_meta(struct builder *b, const char *key, const char *fmt, ...)
{
    Onnx__StringStringEntryProto *e = b_alloc(b, sizeof *e);
    if (!e || b->n_meta == MAX_META)
        return;
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    onnx__string_string_entry_proto__init(e);
    e->key = b_str(b, "%s", key);
    e->value = b_str(b, "%s", tmp);
    b->meta[b->n_meta++] = e;
}

/* f(x) for kd's activations, in the same operation order as kd_act_forward;
 * returns the output's name (x itself for identity). */
static const char *b_activation(struct builder *b, enum kd_act act, const char *x, const char *prefix)
{
    switch (act) {
    case KD_ACT_IDENTITY:
        return x;
    case KD_ACT_RELU:
        return out_of(b_node(b, "Relu", NULL, 1, x));
    case KD_ACT_TANH:
        return out_of(b_node(b, "Tanh", NULL, 1, x));
    case KD_ACT_GELU: {
        /* y = 0.5 x (1 + erf(x / sqrt 2)), kd's exact GELU, as (0.5 * x) * (1 + erf(x * (1 / sqrt 2))) */
        char *c = b_str(b, "%s.gelu.inv_sqrt2", prefix), *one = b_str(b, "%s.gelu.one", prefix),
             *half = b_str(b, "%s.gelu.half", prefix);
        if (!c || !one || !half)
            return "";
        b_scalar(b, c, 0.70710678118654752440f); /* activation.c's KD_INV_SQRT2 */
        b_scalar(b, one, 1.0f);
        b_scalar(b, half, 0.5f);
        const char *t = out_of(b_node(b, "Mul", NULL, 2, x, c));
        const char *e = out_of(b_node(b, "Erf", NULL, 1, t));
        const char *a = out_of(b_node(b, "Add", NULL, 2, e, one));
        const char *h = out_of(b_node(b, "Mul", NULL, 2, x, half));
        return out_of(b_node(b, "Mul", NULL, 2, h, a));
    }
    }
    return x;
}

/* y = x W^T + b for a layer stored (out, in) as PyTorch stores it: Gemm
 * with transB = 1, the weights named "<prefix>.weight" / "<prefix>.bias". */
static const char *b_dense(struct builder *b, const struct kd_dense *l, const char *x, const char *prefix,
                           const char *out)
{
    char *w = b_str(b, "%s.weight", prefix), *bias = b_str(b, "%s.bias", prefix);
    if (!w || !bias)
        return "";
    int64_t wd[2] = {(int64_t)l->out, (int64_t)l->in}, bd[1] = {(int64_t)l->out};
    b_init(b, w, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, wd, 2, l->w, l->out * l->in * sizeof(float));
    b_init(b, bias, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, bd, 1, l->b, l->out * sizeof(float));
    Onnx__NodeProto *n = b_node(b, "Gemm", out, 3, x, w, bias);
    attr_int(b, n, "transB", 1);
    return out_of(n);
}

/* protobuf-c's output sink, appending to a FILE. */
struct file_sink {
    ProtobufCBuffer base;
    FILE *f;
    int saved_errno;
};

static void file_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
    struct file_sink *s = (struct file_sink *)buf;
    if (s->saved_errno || len == 0)
        return;
    errno = 0;
    if (fwrite(data, 1, len, s->f) != len)
        s->saved_errno = errno ? errno : EIO;
}

/* Wraps the builder's graph in a model and writes it to path atomically
 * (temporary file, then rename). */
static kd_status write_model(struct builder *b, const char *path, const char *graph_name, const char *doc,
                             struct kd_error *err)
{
    if (b->nomem)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory building the ONNX graph for '%s'", path);
    Onnx__GraphProto g;
    onnx__graph_proto__init(&g);
    g.name = (char *)graph_name;
    g.node = b->nodes;
    g.n_node = b->n_nodes;
    g.initializer = b->inits;
    g.n_initializer = b->n_inits;
    g.input = b->inputs;
    g.n_input = b->n_inputs;
    g.output = b->outputs;
    g.n_output = b->n_outputs;

    Onnx__OperatorSetIdProto opset;
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = (char *)"";
    opset.has_version = 1;
    opset.version = KD_ONNX_OPSET;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};

    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = ONNX_IR_VERSION;
    model.opset_import = opsets;
    model.n_opset_import = 1;
    model.producer_name = (char *)"kd";
    model.producer_version = (char *)KD_VERSION;
    model.has_model_version = 1;
    model.model_version = 1;
    model.doc_string = (char *)doc;
    model.graph = &g;
    model.metadata_props = b->meta;
    model.n_metadata_props = b->n_meta;

    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory writing '%s'", path);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    struct file_sink sink = {{file_append}, fopen(tmp, "wb"), 0};
    if (!sink.f) {
        kd_status rc = kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    protobuf_c_message_pack_to_buffer(&model.base, &sink.base);
    errno = 0;
    if (!sink.saved_errno && (fflush(sink.f) != 0 || ferror(sink.f) || fsync(fileno(sink.f)) != 0))
        sink.saved_errno = errno ? errno : EIO;
    if (fclose(sink.f) != 0 && !sink.saved_errno)
        sink.saved_errno = errno ? errno : EIO;
    if (!sink.saved_errno && rename(tmp, path) != 0)
        sink.saved_errno = errno;
    kd_status rc = KD_OK;
    if (sink.saved_errno) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(sink.saved_errno));
        remove(tmp);
    }
    free(tmp);
    return rc;
}

/* raw_data is little-endian by the ONNX spec, and kd hands its arrays over as they are. */
static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static kd_status check_finite(const float *v, size_t n, const char *path, const char *what, size_t l,
                              struct kd_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return kd_error_set(err, KD_ERR_ARG, "cannot export '%s' as ONNX: %s %zu value %zu is %g", path, what,
                                l, i, (double)v[i]);
    return KD_OK;
}

kd_status kd_mlp_export_onnx(const struct kd_mlp *m, const char *path, struct kd_error *err)
{
    if (!little_endian())
        return kd_error_set(err, KD_ERR_UNSUPPORTED, "ONNX export needs a little-endian machine");
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct kd_dense *ly = &m->layers[l];
        kd_status st = check_finite(ly->w, ly->out * ly->in, path, "layer", l, err);
        if (!st)
            st = check_finite(ly->b, ly->out, path, "layer bias", l, err);
        if (st)
            return st;
    }
    struct builder b;
    memset(&b, 0, sizeof b);
    const int64_t D = (int64_t)kd_mlp_in(m), C = (int64_t)kd_mlp_out(m);
    const char *const batch[2] = {"batch", NULL};
    int64_t in_dims[2] = {-1, D}, out_dims[2] = {-1, C};
    const struct kd_input_scale *sc = &m->scale;
    const char *in_doc = sc->kind == KD_INPUT_UNSET
                             ? "the features as kd_mlp_forward takes them (already scaled), float32 (batch, D)"
                             : "the raw features as in the data file, float32 (batch, D); the graph applies the "
                               "model's input scaling (metadata input_scale)";
    b_input(&b, b_value(&b, "input", in_doc, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, in_dims, batch, 2));
    const char *x = "input";
    /* The scaling kd trained with, in the same float operations as kd_input_scale_apply. */
    if (sc->kind == KD_INPUT_PIXELS) {
        x = out_of(b_node(&b, "Div", "scaled_input", 2, x, b_scalar(&b, "input_scale.divisor", 255.0f)));
    } else if (sc->kind == KD_INPUT_STANDARD) {
        int64_t sd[1] = {D};
        b_init(&b, "input_scale.mean", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sd, 1, sc->mean, sc->d * sizeof(float));
        b_init(&b, "input_scale.inv_std", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sd, 1, sc->inv_std,
               sc->d * sizeof(float));
        x = out_of(b_node(&b, "Sub", NULL, 2, x, "input_scale.mean"));
        x = out_of(b_node(&b, "Mul", "scaled_input", 2, x, "input_scale.inv_std"));
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        char *prefix = b_str(&b, "layers.%zu", l);
        if (!prefix)
            break;
        int last = l + 1 == m->n_layers;
        x = b_dense(&b, &m->layers[l], x, prefix, last ? "logits" : NULL);
        if (!last)
            x = b_activation(&b, m->cfg.act, x, prefix);
    }
    Onnx__NodeProto *sm = b_node(&b, "Softmax", "probabilities", 1, "logits");
    attr_int(&b, sm, "axis", 1);
    b_output(&b, b_value(&b, "logits", "the class scores, float32 (batch, C): kd predict's logits",
                         ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, out_dims, batch, 2));
    b_output(&b, b_value(&b, "probabilities", "softmax of the logits, float32 (batch, C)",
                         ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, out_dims, batch, 2));

    char sizes[512];
    size_t k = 0;
    for (size_t i = 0; i < m->cfg.n_sizes && k < sizeof sizes; i++)
        k += (size_t)snprintf(sizes + k, sizeof sizes - k, "%s%zu", i ? "-" : "", m->cfg.sizes[i]);
    b_meta(&b, "kd_format", "mlp");
    b_meta(&b, "kd_version", "%s", KD_VERSION);
    b_meta(&b, "sizes", "%s", sizes);
    b_meta(&b, "activation", "%s", kd_act_name(m->cfg.act));
    if (sc->kind != KD_INPUT_UNSET)
        b_meta(&b, "input_scale", "%s", kd_input_scale_name(sc->kind));
    static const char *const scale_doc[] = {
        [KD_INPUT_UNSET] = "the features exactly as given to kd (kd predict scales IDX pixels by 1/255 first)",
        [KD_INPUT_NONE] = "the raw features as in the data file (the model was trained without scaling)",
        [KD_INPUT_PIXELS] = "the raw features as in the data file; the graph divides them by 255 (pixels "
                            "scaling) before the first layer",
        [KD_INPUT_STANDARD] = "the raw features as in the data file; the graph computes (x - input_scale.mean) "
                              "* input_scale.inv_std (standard scaling, the training statistics) before the "
                              "first layer",
    };
    char *doc = b_str(&b,
                      "kd MLP classifier %s (%s between hidden layers). Input 'input' float32 (batch, %lld): "
                      "%s. Outputs 'logits' and 'probabilities' float32 (batch, %lld).",
                      sizes, kd_act_name(m->cfg.act), (long long)D, scale_doc[sc->kind], (long long)C);
    kd_status rc = write_model(&b, path, "kd_mlp", doc ? doc : "", err);
    builder_release(&b);
    return rc;
}

kd_status kd_dual_export_onnx(const struct kd_dual *m, enum kd_side side, const char *featurizer, const char *path,
                              struct kd_error *err)
{
    if (!little_endian())
        return kd_error_set(err, KD_ERR_UNSUPPORTED, "ONNX export needs a little-endian machine");
    if (side != KD_SIDE_QUERY && side != KD_SIDE_DOC)
        return kd_error_set(err, KD_ERR_ARG, "unknown dual-encoder side %d", (int)side);
    const struct kd_tower *t = &m->tower[m->cfg.shared ? 0 : side];
    const char *side_name = side == KD_SIDE_QUERY ? "query" : "doc";
    const char *stem = m->cfg.shared ? "query" : side_name; /* shared towers are saved under query.* */
    kd_status st = check_finite(t->bag.w, (size_t)t->bag.buckets * t->bag.E, path, "embedding table", 0, err);
    for (size_t l = 0; !st && l < t->n_layers; l++) {
        st = check_finite(t->layers[l].w, t->layers[l].out * t->layers[l].in, path, "layer", l, err);
        if (!st)
            st = check_finite(t->layers[l].b, t->layers[l].out, path, "layer bias", l, err);
    }
    if (st)
        return st;

    struct builder b;
    memset(&b, 0, sizeof b);
    const int64_t E = (int64_t)t->bag.E, O = (int64_t)m->dim;
    const char *const bl[2] = {"batch", "length"};
    int64_t in_dims[2] = {-1, -1}, out_dims[2] = {-1, O};
    b_input(&b, b_value(&b, "ids", "bucket ids of each text's features (kd-text-v1), padded to the longest text "
                                   "of the batch with any id in [0, buckets), int64 (batch, length)",
                        ONNX__TENSOR_PROTO__DATA_TYPE__INT64, in_dims, bl, 2));
    b_input(&b, b_value(&b, "mask", "1 where ids holds a feature, 0 at padding, float32 (batch, length)",
                        ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, in_dims, bl, 2));

    /* Mean pooling as kd_embedbag_forward: the sum of the rows of the real
     * ids times 1 / count, and the zero vector for a text without features. */
    char *table = b_str(&b, "%s.bag.weight", stem);
    if (table) {
        int64_t td[2] = {(int64_t)t->bag.buckets, E};
        b_init(&b, table, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, td, 2, t->bag.w,
               (size_t)t->bag.buckets * t->bag.E * sizeof(float));
    }
    const char *ax1 = b_axes(&b, "axes.1", 1), *ax2 = b_axes(&b, "axes.2", 2);
    const char *one = b_scalar(&b, "bag.one", 1.0f);
    Onnx__NodeProto *ga = b_node(&b, "Gather", "bag.rows", 2, table ? table : "", "ids"); /* (B, L, E) */
    attr_int(&b, ga, "axis", 0);
    const char *m3 = out_of(b_node(&b, "Unsqueeze", "bag.mask3", 2, "mask", ax2));     /* (B, L, 1) */
    const char *kept = out_of(b_node(&b, "Mul", "bag.kept", 2, out_of(ga), m3));         /* (B, L, E) */
    Onnx__NodeProto *sum = b_node(&b, "ReduceSum", "bag.sum", 2, kept, ax1);             /* (B, E) */
    attr_int(&b, sum, "keepdims", 0);
    Onnx__NodeProto *cnt = b_node(&b, "ReduceSum", "bag.count", 2, "mask", ax1);         /* (B, 1) */
    attr_int(&b, cnt, "keepdims", 1);
    const char *cnt1 = out_of(b_node(&b, "Max", "bag.count_at_least_1", 2, out_of(cnt), one));
    const char *inv = out_of(b_node(&b, "Reciprocal", "bag.inv_count", 1, cnt1));
    const char *x = out_of(b_node(&b, "Mul", t->n_layers || m->cfg.normalize || m->cfg.score == KD_SCORE_COSINE
                                                 ? "bag.mean"
                                                 : "embedding",
                                  2, out_of(sum), inv)); /* (B, E) */

    int normalizes = m->cfg.normalize || m->cfg.score == KD_SCORE_COSINE;
    for (size_t l = 0; l < t->n_layers; l++) {
        char *prefix = b_str(&b, "%s.layers.%zu", stem, l);
        if (!prefix)
            break;
        int last = l + 1 == t->n_layers;
        x = b_dense(&b, &t->layers[l], x, prefix, last && !normalizes ? "embedding" : NULL);
        if (!last)
            x = b_activation(&b, m->cfg.act, x, prefix);
    }
    if (normalizes) {
        /* y = x / max(||x||, 1e-12), as kd and torch.nn.functional.normalize */
        Onnx__NodeProto *ss = b_node(&b, "ReduceSumSquare", "norm.sum_squares", 1, x); /* (B, 1) */
        attr_ints(&b, ss, "axes", 1);
        attr_int(&b, ss, "keepdims", 1);
        const char *nrm = out_of(b_node(&b, "Sqrt", "norm.l2", 1, out_of(ss)));
        const char *eps = b_scalar(&b, "norm.eps", 1e-12f);
        const char *den = out_of(b_node(&b, "Max", "norm.clamped", 2, nrm, eps));
        x = out_of(b_node(&b, "Div", "embedding", 2, x, den));
    }
    b_output(&b, b_value(&b, "embedding",
                         "the tower's output, float32 (batch, O): kd_dual_encode's rows for the same texts",
                         ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, out_dims, bl, 2));

    char hidden[256] = "";
    size_t k = 0;
    for (size_t l = 0; l < m->cfg.n_layers && k < sizeof hidden; l++)
        k += (size_t)snprintf(hidden + k, sizeof hidden - k, "%s%zu", l ? "," : "", m->cfg.hidden[l]);
    b_meta(&b, "kd_format", "dual_encoder_tower");
    b_meta(&b, "kd_version", "%s", KD_VERSION);
    b_meta(&b, "tower", "%s", side_name);
    b_meta(&b, "shared", "%d", m->cfg.shared ? 1 : 0);
    b_meta(&b, "buckets", "%u", (unsigned)t->bag.buckets);
    b_meta(&b, "embedding_dim", "%zu", t->bag.E);
    b_meta(&b, "hidden", "%s", hidden);
    b_meta(&b, "activation", "%s", kd_act_name(m->cfg.act));
    b_meta(&b, "normalize", "%d", normalizes);
    b_meta(&b, "score", "%s", kd_dual_score_name(m->cfg.score));
    b_meta(&b, "temperature", "%.9g", (double)m->cfg.temperature);
    b_meta(&b, "featurizer", "%s", featurizer ? featurizer : "");
    char *doc = b_str(&b,
                      "kd dual-encoder %s tower. Inputs: 'ids' int64 (batch, length), the bucket ids of each "
                      "text's features in the featuriser's order (metadata 'featurizer', docs/retrieval.md), "
                      "each row padded to the batch's longest text with any valid id (0); 'mask' float32 "
                      "(batch, length), 1 for a feature and 0 for padding. A text without features is a row of "
                      "mask 0 and gives the zero vector (before normalisation). Output 'embedding' float32 "
                      "(batch, %lld); score = dot(query, doc)%s.",
                      side_name, (long long)O, m->cfg.score == KD_SCORE_COSINE ? " / temperature" : "");
    kd_status rc = write_model(&b, path, side == KD_SIDE_QUERY ? "kd_query_tower" : "kd_doc_tower",
                               doc ? doc : "", err);
    builder_release(&b);
    return rc;
}
