/* brski-client: asks a MASA for a voucher (or an audit log) as a registrar
 * would, and checks the answer. Exit 0: a checked voucher (or audit log);
 * 1: refused, unreachable or a bad answer; 2: usage. */
#include "brski_client.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define PROG "brski-client"

struct cli {
    const char *masa, *tls_ca, *masa_ca, *out, *client_cert, *client_key;
    bool auditlog;
    bool base64_body;           /* the RVR as base64 text, as EST clients send */
    struct brski_client_opts o;
};

struct answer {
    long status;
    unsigned char *body;
    size_t len;
    char *type;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " --masa https://HOST:PORT --tls-ca FILE --pledge-cert FILE --pledge-key FILE\n"
        "         --registrar-cert FILE --registrar-key FILE [--masa-ca FILE] [--nonceless]\n"
        "         [--no-proximity] [--econtent-id-data] [--out FILE] [--auditlog]\n"
        "         [--client-cert FILE --client-key FILE]\n"
        "         deployed clients' habits: [--base64-body] [--voucher-root]\n"
        "         [--issuer-form aki|der|name] [--nonce-b64url] [--serial-case]\n"
        "         [--registrar-omits-nonce] [--created-on-date] [--field-client]\n"
        "Sends a registrar voucher-request (RFC 8995) to the MASA's requestvoucher (or, with\n"
        "--auditlog, requestauditlog), verifies the voucher against --masa-ca and prints it.\n");
}

enum {
    OPT_MASA = 256, OPT_TLS_CA, OPT_PLEDGE_CERT, OPT_PLEDGE_KEY, OPT_REGISTRAR_CERT,
    OPT_REGISTRAR_KEY, OPT_MASA_CA, OPT_NONCELESS, OPT_NO_PROXIMITY, OPT_ECONTENT_ID_DATA,
    OPT_OUT, OPT_AUDITLOG, OPT_CLIENT_CERT, OPT_CLIENT_KEY, OPT_HELP, OPT_BASE64_BODY,
    OPT_VOUCHER_ROOT, OPT_ISSUER_FORM, OPT_NONCE_B64URL, OPT_SERIAL_CASE,
    OPT_REGISTRAR_OMITS_NONCE, OPT_CREATED_ON_DATE, OPT_FIELD_CLIENT,
};

static const struct option options[] = {
    {"masa", required_argument, NULL, OPT_MASA},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"pledge-cert", required_argument, NULL, OPT_PLEDGE_CERT},
    {"pledge-key", required_argument, NULL, OPT_PLEDGE_KEY},
    {"registrar-cert", required_argument, NULL, OPT_REGISTRAR_CERT},
    {"registrar-key", required_argument, NULL, OPT_REGISTRAR_KEY},
    {"masa-ca", required_argument, NULL, OPT_MASA_CA},
    {"nonceless", no_argument, NULL, OPT_NONCELESS},
    {"no-proximity", no_argument, NULL, OPT_NO_PROXIMITY},
    {"econtent-id-data", no_argument, NULL, OPT_ECONTENT_ID_DATA},
    {"out", required_argument, NULL, OPT_OUT},
    {"auditlog", no_argument, NULL, OPT_AUDITLOG},
    {"client-cert", required_argument, NULL, OPT_CLIENT_CERT},
    {"client-key", required_argument, NULL, OPT_CLIENT_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {"base64-body", no_argument, NULL, OPT_BASE64_BODY},
    {"voucher-root", no_argument, NULL, OPT_VOUCHER_ROOT},
    {"issuer-form", required_argument, NULL, OPT_ISSUER_FORM},
    {"nonce-b64url", no_argument, NULL, OPT_NONCE_B64URL},
    {"serial-case", no_argument, NULL, OPT_SERIAL_CASE},
    {"registrar-omits-nonce", no_argument, NULL, OPT_REGISTRAR_OMITS_NONCE},
    {"created-on-date", no_argument, NULL, OPT_CREATED_ON_DATE},
    {"field-client", no_argument, NULL, OPT_FIELD_CLIENT},
    {NULL, 0, NULL, 0},
};

/* --issuer-form: -1 when arg names no form */
static int issuer_form(struct cli *c, const char *arg)
{
    static const char *const names[] = {"aki", "der", "name"};
    static const enum brski_issuer_form forms[] = {BRSKI_ISSUER_AKI, BRSKI_ISSUER_NAME_DER,
                                                   BRSKI_ISSUER_NAME_TEXT};

    for (size_t i = 0; i < 3; i++)
        if (!strcmp(arg, names[i])) {
            c->o.idevid_issuer = true;
            c->o.idevid_issuer_form = forms[i];
            return 0;
        }
    return -1;
}

/* every habit at once, as the field clients of docs/brski.md combine them */
static void field_client(struct cli *c)
{
    c->base64_body = true;
    c->o.voucher_root = true;
    c->o.idevid_issuer = true;
    c->o.idevid_issuer_form = BRSKI_ISSUER_NAME_TEXT;
    c->o.nonce_base64url = true;
    c->o.serial_case = true;
    c->o.econtent_id_data = true;
}

static int set_quirk(struct cli *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_BASE64_BODY: c->base64_body = true; break;
    case OPT_VOUCHER_ROOT: c->o.voucher_root = true; break;
    case OPT_ISSUER_FORM: return issuer_form(c, arg);
    case OPT_NONCE_B64URL: c->o.nonce_base64url = true; break;
    case OPT_SERIAL_CASE: c->o.serial_case = true; break;
    case OPT_REGISTRAR_OMITS_NONCE: c->o.registrar_omits_nonce = true; break;
    case OPT_CREATED_ON_DATE: c->o.created_on_date_only = true; break;
    case OPT_FIELD_CLIENT: field_client(c); break;
    }
    return 0;
}

static int set_option(struct cli *c, int opt, const char *arg)
{
    if (opt >= OPT_BASE64_BODY)
        return set_quirk(c, opt, arg);
    switch (opt) {
    case OPT_MASA: c->masa = arg; break;
    case OPT_TLS_CA: c->tls_ca = arg; break;
    case OPT_PLEDGE_CERT: c->o.pledge_cert = arg; break;
    case OPT_PLEDGE_KEY: c->o.pledge_key = arg; break;
    case OPT_REGISTRAR_CERT: c->o.registrar_cert = arg; break;
    case OPT_REGISTRAR_KEY: c->o.registrar_key = arg; break;
    case OPT_MASA_CA: c->masa_ca = arg; break;
    case OPT_NONCELESS: c->o.nonceless = true; break;
    case OPT_NO_PROXIMITY: c->o.no_proximity = true; break;
    case OPT_ECONTENT_ID_DATA: c->o.econtent_id_data = true; break;
    case OPT_OUT: c->out = arg; break;
    case OPT_AUDITLOG: c->auditlog = true; break;
    case OPT_CLIENT_CERT: c->client_cert = arg; break;
    case OPT_CLIENT_KEY: c->client_key = arg; break;
    }
    return 0;
}

static const char *missing_option(const struct cli *c)
{
    if (!c->masa)
        return "--masa";
    if (!c->tls_ca)
        return "--tls-ca";
    if (!c->o.pledge_cert)
        return "--pledge-cert";
    if (!c->o.pledge_key)
        return "--pledge-key";
    if (!c->o.registrar_cert)
        return "--registrar-cert";
    if (!c->o.registrar_key)
        return "--registrar-key";
    if (!c->auditlog && !c->masa_ca)
        return "--masa-ca (to verify the voucher)";
    return NULL;
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    return 2;
}

static int check_args(const struct cli *c)
{
    const char *missing = missing_option(c);

    if (missing)
        return usage_error("%s is required", missing);
    if (!c->client_cert != !c->client_key)
        return usage_error("--client-cert and --client-key go together");
    if (strncasecmp(c->masa, "https://", 8) != 0)
        return usage_error("--masa must be an https:// URL: %s", c->masa);
    if (c->auditlog && c->out)
        return usage_error("--out is for a voucher, not with --auditlog");
    return -1;
}

/* -1: go on; otherwise the exit status */
static int parse_args(struct cli *c, int argc, char **argv)
{
    int opt;

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (opt == '?') {
            usage(stderr);
            return 2;
        }
        if (set_option(c, opt, optarg) < 0)
            return usage_error("--issuer-form is aki, der or name, not %s", optarg);
    }
    if (optind < argc)
        return usage_error("unexpected argument: %s", argv[optind]);
    return check_args(c);
}

static char *endpoint(const char *masa, const char *name)
{
    size_t base = strlen(masa);

    while (base > 0 && masa[base - 1] == '/')
        base--;
    size_t n = base + strlen("/.well-known/brski/") + strlen(name) + 1;
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%.*s/.well-known/brski/%s", (int)base, masa, name);
    return url;
}

/* The media type of a Content-Type value, without parameters, case-insensitively. */
static bool type_is(const char *type, const char *want)
{
    size_t n = strlen(want);

    if (!type || strncasecmp(type, want, n) != 0)
        return false;
    type += n;
    while (*type == ' ' || *type == '\t')
        type++;
    return *type == '\0' || *type == ';';
}

static int check_type(const struct answer *a, const char *want)
{
    if (type_is(a->type, want))
        return 0;
    fprintf(stderr, PROG ": the answer's Content-Type is %s, not %s\n",
            a->type ? a->type : "missing", want);
    return 1;
}

static void print_text(FILE *f, const struct answer *a)
{
    fwrite(a->body, 1, a->len, f);
    if (a->len == 0 || a->body[a->len - 1] != '\n')
        fputc('\n', f);
}

static int write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, len, f) == len;

    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        perror(path);
    return ok ? 0 : 1;
}

static int check_leaf(const char *json, const char *leaf, const char *want)
{
    char *got = brski_voucher_leaf(json, leaf);
    int bad = want ? !got || strcmp(got, want) != 0 : got != NULL;

    if (bad && !got)
        fprintf(stderr, PROG ": the voucher has no %s; the request had \"%s\"\n", leaf, want);
    else if (bad && !want)
        fprintf(stderr, PROG ": the voucher has %s \"%s\"; the request had none\n", leaf, got);
    else if (bad)
        fprintf(stderr, PROG ": the voucher's %s is \"%s\"; the request had \"%s\"\n",
                leaf, got, want);
    free(got);
    return bad;
}

/* RFC 8995 §5.6: the voucher names the IDevID's serial-number and echoes
 * the pledge's nonce as the pledge wrote it (pledges compare the text) */
static int check_voucher(const struct cli *c, const char *json)
{
    const char *want = c->o.registrar_omits_nonce ? NULL : brski_last_nonce_text();
    int bad = check_leaf(json, "serial-number", brski_last_serial());

    bad |= check_leaf(json, "nonce", want);
    return bad ? 1 : 0;
}

/* an answer to a base64 request comes in base64 (docs/brski.md) */
static int unwrap_answer(const struct cli *c, struct answer *a)
{
    size_t n;
    unsigned char *der;

    if (!c->base64_body)
        return 0;
    if (!(der = brski_unbase64(a->body, a->len, &n))) {
        fprintf(stderr, PROG ": the answer to a base64 request is not base64\n");
        return 1;
    }
    free(a->body);
    a->body = der;
    a->len = n;
    return 0;
}

static int accept_voucher(const struct cli *c, struct answer *a)
{
    char err[1024], *json;

    if (check_type(a, BRSKI_VOUCHER_CMS) != 0 || unwrap_answer(c, a) != 0)
        return 1;
    if (c->out && write_file(c->out, a->body, a->len) != 0)
        return 1;
    if (brski_verify_voucher(a->body, a->len, c->masa_ca, &json, err, sizeof err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    printf("%s\n", json);
    int rc = check_voucher(c, json);
    free(json);
    if (rc == 0)
        fprintf(stderr, PROG ": voucher OK: signed by the MASA, serial-number and nonce match\n");
    return rc;
}

static int accept_auditlog(const struct answer *a)
{
    if (check_type(a, "application/json") != 0)
        return 1;
    print_text(stdout, a);
    return 0;
}

static int judge(const struct cli *c, struct answer *a)
{
    if (a->status == 0) {
        fprintf(stderr, PROG ": %s\n", brski_last_post_error());
        return 1;
    }
    if (a->status != 200) {
        print_text(stderr, a);
        return 1;
    }
    return c->auditlog ? accept_auditlog(a) : accept_voucher(c, a);
}

static void post(const struct cli *c, const char *url, const unsigned char *rvr, size_t len,
                 struct answer *a)
{
    const char *accept = c->auditlog ? "application/json" : BRSKI_VOUCHER_CMS;

    char *text = c->base64_body ? brski_base64_lines(rvr, len) : NULL;

    if (text) {
        rvr = (const unsigned char *)text;
        len = strlen(text);
    }
    a->status = brski_post(url, c->tls_ca, c->client_cert, c->client_key, NULL, accept,
                           rvr, len, &a->body, &a->len, &a->type);
    free(text);
    if (a->status != 0)
        fprintf(stderr, PROG ": POST %s: %ld %s (%zu bytes)\n", url, a->status,
                a->type ? a->type : "(no Content-Type)", a->len);
}

static int run(const struct cli *c)
{
    char err[1024];
    unsigned char *rvr;
    size_t rvr_len;
    struct answer a = {0};

    if (brski_build_rvr(&c->o, &rvr, &rvr_len, err, sizeof err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    char *url = endpoint(c->masa, c->auditlog ? "requestauditlog" : "requestvoucher");
    if (!url) {
        fprintf(stderr, PROG ": out of memory\n");
        free(rvr);
        return 1;
    }
    post(c, url, rvr, rvr_len, &a);
    int rc = judge(c, &a);
    free(url);
    free(rvr);
    free(a.body);
    free(a.type);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    int rc = parse_args(&c, argc, argv);

    if (rc >= 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, PROG ": cannot initialise libcurl\n");
        return 1;
    }
    rc = run(&c);
    curl_global_cleanup();
    return rc;
}
