/* An MLP as one dependency-free C99 source file: the weights as static const
 * float arrays and a plain-loop forward pass, for programs that cannot link
 * kd, BLAS or a safetensors reader (firmware, a plugin, a one-file tool). */
#include "student/kd_student.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Hidden layers up to this width get automatic (stack) scratch arrays, two of
 * them, so at most 2 x 4 KiB of stack; wider ones get static arrays, which
 * makes the exported functions non-reentrant (said in the file's comment). */
#define EXPORT_STACK_MAX_WIDTH 1024

/* Values per line of an array initialiser (about 100 columns). */
#define EXPORT_PER_LINE 6

/* C99 and C11 keywords, and C23's (so the file still compiles when a later
 * standard is chosen); a prefix spelled like one is refused. */
static const char *const c_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
    "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
    "volatile", "while", "_Bool", "_Complex", "_Imaginary", "_Alignas", "_Alignof", "_Atomic",
    "_Generic", "_Noreturn", "_Static_assert", "_Thread_local", "alignas", "alignof", "bool",
    "constexpr", "false", "nullptr", "static_assert", "thread_local", "true", "typeof",
    "typeof_unqual", "_BitInt", "_Decimal128", "_Decimal32", "_Decimal64"};

/* ASCII only, whatever the locale: [A-Za-z_][A-Za-z0-9_]* and not a keyword. */
static int is_c_identifier(const char *s)
{
    if (!s[0] || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    for (size_t i = 0; i < sizeof c_keywords / sizeof *c_keywords; i++)
        if (strcmp(s, c_keywords[i]) == 0)
            return 0;
    return 1;
}

/* v as a C float literal that the compiler turns back into exactly v:
 * 9 significant digits are enough for any float, and the 'f' suffix makes the
 * compiler round the decimal straight to float (never through double).
 * The locale's decimal point (which may be ',' or several bytes) becomes '.',
 * and a literal without a point or exponent gets ".0" so that the suffix is
 * legal: "1" -> "1.0f", "-0" -> "-0.0f", "1e-05" -> "1e-05f",
 * "1.40129846e-45" (the smallest denormal) -> "1.40129846e-45f".
 * v must be finite. buf holds at least 32 bytes. */
static void float_literal(char *buf, size_t n, float v)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.9g", (double)v);
    size_t k = 0;
    int point_or_exp = 0;
    for (const char *p = tmp; *p && k + 4 < n;) {
        if ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == 'e') {
            point_or_exp |= *p == 'e';
            buf[k++] = *p++;
        } else {
            /* Nothing else can appear in %g output of a finite value, so
             * this run of bytes is the decimal point. */
            buf[k++] = '.';
            point_or_exp = 1;
            while (*p && !((*p >= '0' && *p <= '9') || *p == 'e'))
                p++;
        }
    }
    if (!point_or_exp) {
        buf[k++] = '.';
        buf[k++] = '0';
    }
    buf[k++] = 'f';
    buf[k] = '\0';
}

/* fprintf that remembers the first failure and its errno, so that the code
 * generator reads straight through and checks once at the end. */
struct emitter {
    FILE *f;
    int failed;
    int saved_errno;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void emit(struct emitter *e, const char *fmt, ...)
{
    if (e->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    int r = vfprintf(e->f, fmt, ap);
    va_end(ap);
    if (r < 0) {
        e->failed = 1;
        e->saved_errno = errno ? errno : EIO;
    }
}

/* static const float <prefix>_<what>[rows * cols] = {...}; */
static void emit_array(struct emitter *e, const char *prefix, const char *what, const float *v, size_t rows,
                       size_t cols)
{
    char lit[48];
    if (rows > 1)
        emit(e, "static const float %s_%s[%zu * %zu] = {\n", prefix, what, rows, cols);
    else
        emit(e, "static const float %s_%s[%zu] = {\n", prefix, what, cols);
    size_t n = rows * cols;
    for (size_t i = 0; i < n && !e->failed; i++) {
        float_literal(lit, sizeof lit, v[i]);
        int eol = (i + 1) % EXPORT_PER_LINE == 0 || i + 1 == n;
        emit(e, "%s%s%s", i % EXPORT_PER_LINE == 0 ? "    " : " ", lit, i + 1 == n ? "\n" : eol ? ",\n" : ",");
    }
    emit(e, "};\n");
}

/* The whole file; errors are collected in e. */
static void emit_source(struct emitter *e, const struct kd_mlp *m, const char *prefix, const char *upper,
                        size_t hidden_width, size_t n_params)
{
    const size_t L = m->n_layers, D = kd_mlp_in(m), C = kd_mlp_out(m);
    const enum kd_act act = m->cfg.act;
    const int has_act = L > 1 && act != KD_ACT_IDENTITY;
    const int needs_math = L > 1 && (act == KD_ACT_TANH || act == KD_ACT_GELU);
    const int stack_hidden = hidden_width <= EXPORT_STACK_MAX_WIDTH;
    const int stack_logits = C <= EXPORT_STACK_MAX_WIDTH;
    /* Pixels and standard scaling copy the input into xs first (x is const). */
    const int scaled = m->scale.kind == KD_INPUT_PIXELS || m->scale.kind == KD_INPUT_STANDARD;
    const int stack_input = !scaled || D <= EXPORT_STACK_MAX_WIDTH;
    char arch[KD_MLP_MAX_LAYERS * 12 + 1] = "";
    for (size_t i = 0, k = 0; i < m->cfg.n_sizes; i++)
        k += (size_t)snprintf(arch + k, sizeof arch - k, i ? "-%zu" : "%zu", m->cfg.sizes[i]);

    emit(e, "/*\n");
    emit(e, " * %s: an MLP classifier generated by kd %s (kd export --format c).\n", prefix, KD_VERSION);
    emit(e, " * Regenerate it rather than edit it.\n");
    emit(e, " *\n");
    if (L > 1)
        emit(e, " * Architecture: %s (inputs, hidden..., classes), %s after each hidden\n"
                " * layer, a linear output layer; %zu parameters.\n",
             arch, kd_act_name(act), n_params);
    else
        emit(e, " * Architecture: %s (inputs, classes), one linear layer; %zu parameters.\n", arch,
             n_params);
    emit(e, " * A layer computes y = W x + b with W stored (out, in) row-major, as kd and\n"
            " * PyTorch store it, summing each dot product in index order in float.\n");
    emit(e, " *\n");
    emit(e, " * Plain C99 that needs only the C standard library%s.\n",
         needs_math ? " (<math.h>: link with -lm)" : "");
    emit(e, " * Compile it with your program, or #include it in one .c file, and call\n"
            " *\n"
            " *     float logits[%s_CLASSES];\n"
            " *     %s_logits(x, logits);\n"
            " *     int k = %s_predict(x);\n"
            " *\n"
            " * logits are the unnormalised class scores and k is the class with the\n"
            " * largest one (the first, on ties). Compiled on its own, the file keeps its\n"
            " * macros to itself; declare the functions with\n"
            " *\n"
            " *     void %s_logits(const float *x, float *logits);\n"
            " *     int %s_predict(const float *x);\n"
            " *\n",
         upper, prefix, prefix, prefix, prefix);
    switch (m->scale.kind) {
    case KD_INPUT_PIXELS:
        emit(e, " * x holds %s_INPUTS raw features, as in the data file (pixels 0..255): the\n"
                " * model was trained with pixels scaling, and %s_logits divides each\n"
                " * value by 255 itself. Do not scale x beforehand.\n *\n",
             upper, prefix);
        break;
    case KD_INPUT_STANDARD:
        emit(e, " * x holds %s_INPUTS raw features, as in the data file: the model was\n"
                " * trained with standard scaling, and %s_logits computes\n"
                " * (x[j] - %s_mean[j]) * %s_inv_std[j] itself with the training\n"
                " * statistics. Do not scale x beforehand.\n *\n",
             upper, prefix, prefix, prefix);
        break;
    case KD_INPUT_NONE:
        emit(e, " * x holds %s_INPUTS raw features, as in the data file (the model was\n"
                " * trained without scaling).\n *\n",
             upper);
        break;
    case KD_INPUT_UNSET:
        emit(e, " * x holds %s_INPUTS features, preprocessed exactly as for training (e.g.\n"
                " * pixels divided by 255): this model's file does not say how.\n *\n",
             upper);
        break;
    }
    if (stack_hidden && stack_logits && stack_input)
        emit(e, " * Thread safety: the functions keep their scratch space on the stack (at\n"
                " * most %zu floats), so several threads may call them at once.\n",
             (L > 2 ? 2 : L - 1) * hidden_width + C + (scaled ? D : 0));
    else
        emit(e, " * Thread safety: the layers are too wide for scratch space on the stack, so\n"
                " * it is in static arrays: do not call these functions from several threads\n"
                " * at once.\n");
    emit(e, " */\n");
    if (needs_math)
        emit(e, "#include <math.h>\n");
    emit(e, "#include <stddef.h>\n\n");
    emit(e, "#define %s_INPUTS %zu\n#define %s_CLASSES %zu\n\n", upper, D, upper, C);
    emit(e, "void %s_logits(const float *x, float *logits);\n", prefix);
    emit(e, "int %s_predict(const float *x);\n", prefix);

    for (size_t l = 0; l < L && !e->failed; l++) {
        const struct kd_dense *ly = &m->layers[l];
        char wn[32], bn[32];
        snprintf(wn, sizeof wn, "w%zu", l);
        snprintf(bn, sizeof bn, "b%zu", l);
        emit(e, "\n/* layer %zu: W (%zu, %zu), b (%zu) */\n", l, ly->out, ly->in, ly->out);
        emit_array(e, prefix, wn, ly->w, ly->out, ly->in);
        emit_array(e, prefix, bn, ly->b, 1, ly->out);
    }
    if (m->scale.kind == KD_INPUT_STANDARD) {
        emit(e, "\n/* input scaling: x'[j] = (x[j] - mean[j]) * inv_std[j], the training statistics */\n");
        emit_array(e, prefix, "mean", m->scale.mean, 1, D);
        emit_array(e, prefix, "inv_std", m->scale.inv_std, 1, D);
    }

    emit(e, "\n/* y (n_out) = W (n_out, n_in) x (n_in) + b, each sum in index order. */\n"
            "static void %s_dense(const float *w, const float *b, size_t n_in, size_t n_out,\n"
            "%*sconst float *x, float *y)\n"
            "{\n"
            "    size_t i, j;\n"
            "    for (i = 0; i < n_out; i++) {\n"
            "        const float *row = w + i * n_in;\n"
            "        float s = 0.0f;\n"
            "        for (j = 0; j < n_in; j++)\n"
            "            s += row[j] * x[j];\n"
            "        y[i] = s + b[i];\n"
            "    }\n"
            "}\n",
         prefix, (int)(strlen(prefix) + 19), "");
    if (has_act) {
        static const char *const body[] = {
            [KD_ACT_RELU] = "y[i] = y[i] > 0.0f ? y[i] : 0.0f;",
            [KD_ACT_TANH] = "y[i] = tanhf(y[i]);",
            [KD_ACT_GELU] = "y[i] = 0.5f * y[i] * (1.0f + erff(y[i] * 0.70710678118654752f));",
        };
        static const char *const what[] = {
            [KD_ACT_RELU] = "relu: max(y, 0)",
            [KD_ACT_TANH] = "tanh",
            [KD_ACT_GELU] = "gelu, the exact erf form: y Phi(y)",
        };
        emit(e, "\n/* %s, in place on n values. */\n"
                "static void %s_act(float *y, size_t n)\n"
                "{\n"
                "    size_t i;\n"
                "    for (i = 0; i < n; i++)\n"
                "        %s\n"
                "}\n",
             what[act], prefix, body[act]);
    }

    emit(e, "\nvoid %s_logits(const float *x, float *logits)\n{\n", prefix);
    if (scaled) {
        if (!stack_input)
            emit(e, "    /* Static: too wide for the stack (see the top of the file). */\n"
                    "    static float xs[%s_INPUTS];\n",
                 upper);
        else
            emit(e, "    float xs[%s_INPUTS];\n", upper);
        emit(e, "    size_t j;\n");
    }
    if (L > 1) {
        /* Hidden layers alternate between h0 and h1; one hidden layer needs h0 only. */
        char decl[64];
        if (L > 2)
            snprintf(decl, sizeof decl, "h0[%zu], h1[%zu]", hidden_width, hidden_width);
        else
            snprintf(decl, sizeof decl, "h0[%zu]", hidden_width);
        if (!stack_hidden)
            emit(e, "    /* Static: too wide for the stack (see the top of the file). */\n"
                    "    static float %s;\n",
                 decl);
        else
            emit(e, "    float %s;\n", decl);
    }
    if (m->scale.kind == KD_INPUT_PIXELS)
        emit(e, "    for (j = 0; j < %s_INPUTS; j++) /* the pixels scaling kd trained with */\n"
                "        xs[j] = x[j] / 255.0f;\n",
             upper);
    else if (m->scale.kind == KD_INPUT_STANDARD)
        emit(e, "    for (j = 0; j < %s_INPUTS; j++) /* the standard scaling kd trained with */\n"
                "        xs[j] = (x[j] - %s_mean[j]) * %s_inv_std[j];\n",
             upper, prefix, prefix);
    for (size_t l = 0; l < L; l++) {
        const struct kd_dense *ly = &m->layers[l];
        const char *in = l == 0 ? (scaled ? "xs" : "x") : (l - 1) % 2 ? "h1" : "h0";
        const char *out = l + 1 == L ? "logits" : l % 2 ? "h1" : "h0";
        /* The macros name the outer sizes, which also keeps them "used". */
        char n_in[300], n_out[300];
        if (l == 0)
            snprintf(n_in, sizeof n_in, "%s_INPUTS", upper);
        else
            snprintf(n_in, sizeof n_in, "%zu", ly->in);
        if (l + 1 == L)
            snprintf(n_out, sizeof n_out, "%s_CLASSES", upper);
        else
            snprintf(n_out, sizeof n_out, "%zu", ly->out);
        emit(e, "    %s_dense(%s_w%zu, %s_b%zu, %s, %s, %s, %s);\n", prefix, prefix, l, prefix, l, n_in, n_out,
             in, out);
        if (has_act && l + 1 < L)
            emit(e, "    %s_act(%s, %zu);\n", prefix, out, ly->out);
    }
    emit(e, "}\n");

    emit(e, "\nint %s_predict(const float *x)\n{\n", prefix);
    if (!stack_logits)
        emit(e, "    /* Static: too wide for the stack (see the top of the file). */\n"
                "    static float logits[%s_CLASSES];\n",
             upper);
    else
        emit(e, "    float logits[%s_CLASSES];\n", upper);
    emit(e, "    int best = 0, c;\n"
            "    %s_logits(x, logits);\n"
            "    for (c = 1; c < %s_CLASSES; c++)\n"
            "        if (logits[c] > logits[best])\n"
            "            best = c;\n"
            "    return best;\n"
            "}\n",
         prefix, upper);
}

kd_status kd_mlp_export_c(const struct kd_mlp *m, const char *path, const char *prefix,
                          struct kd_error *err)
{
    if (!prefix || !is_c_identifier(prefix))
        return kd_error_set(err, KD_ERR_ARG, "export prefix '%s' is not a C identifier",
                            prefix ? prefix : "(null)");
    size_t hidden_width = 0, n_params = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct kd_dense *ly = &m->layers[l];
        /* An array dimension is an int expression in the generated file. */
        if (ly->out > (size_t)INT_MAX / ly->in)
            return kd_error_set(err, KD_ERR_UNSUPPORTED,
                                "cannot export '%s' as C: layer %zu has %zu x %zu weights, more than an "
                                "int can count",
                                path, l, ly->out, ly->in);
        for (size_t i = 0; i < ly->out * ly->in; i++)
            if (!isfinite(ly->w[i]))
                return kd_error_set(err, KD_ERR_ARG, "cannot export '%s' as C: layer %zu weight %zu is %g",
                                    path, l, i, (double)ly->w[i]);
        for (size_t i = 0; i < ly->out; i++)
            if (!isfinite(ly->b[i]))
                return kd_error_set(err, KD_ERR_ARG, "cannot export '%s' as C: layer %zu bias %zu is %g",
                                    path, l, i, (double)ly->b[i]);
        if (l + 1 < m->n_layers && ly->out > hidden_width)
            hidden_width = ly->out;
        n_params += ly->out * ly->in + ly->out;
    }
    char upper[256];
    size_t plen = strlen(prefix);
    if (plen >= sizeof upper)
        return kd_error_set(err, KD_ERR_ARG, "export prefix '%.40s...' is longer than %zu characters", prefix,
                            sizeof upper - 1);
    /* ASCII by hand: toupper would follow the locale (Turkish 'i'). */
    for (size_t i = 0; i <= plen; i++)
        upper[i] = prefix[i] >= 'a' && prefix[i] <= 'z' ? (char)(prefix[i] - 'a' + 'A') : prefix[i];

    kd_status rc = KD_OK;
    struct emitter e = {NULL, 0, 0};
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory writing '%s'", path);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    if (!(e.f = fopen(tmp, "w"))) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    emit_source(&e, m, prefix, upper, hidden_width, n_params);
    errno = 0;
    if (!e.failed && (fflush(e.f) != 0 || ferror(e.f) || fsync(fileno(e.f)) != 0)) {
        e.failed = 1;
        e.saved_errno = errno ? errno : EIO;
    }
    FILE *closing = e.f;
    e.f = NULL;
    if (fclose(closing) != 0 && !e.failed) {
        e.failed = 1;
        e.saved_errno = errno;
    }
    if (!e.failed && rename(tmp, path) != 0) {
        e.failed = 1;
        e.saved_errno = errno;
    }
    if (e.failed) {
        rc = kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(e.saved_errno));
        remove(tmp);
    }
    free(tmp);
    return rc;
}
