/*
 * vitalog — cli: `vitalog serve`.
 *
 * Order of start-up, so that a bad option never leaves anything behind:
 *   1. parse and check every option (exit 2 on a bad one);
 *   2. bind the listening socket (exit 1 when the address is unusable or
 *      in use) — before the data directory is touched;
 *   3. umask 077; create DIR (0700), lock DIR/vitalog.lock, load or create
 *      the ledger key, open the store (which makes vitalog.db and its -wal
 *      and -shm files 0600 whatever mode they had);
 *   4. serve until SIGINT or SIGTERM, then drain (bounded by
 *      --drain-seconds) and close.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "vitalog/auth.h"
#include "vitalog/cli.h"
#include "vitalog/fhir.h"
#include "vitalog/http.h"
#include "vitalog/ledger.h"
#include "vitalog/store.h"
#include "vitalog/util.h"

static const char usage_serve[] =
    "usage: vitalog serve [--data DIR] [--listen HOST:PORT] [options]\n"
    "\n"
    "Serves the FHIR REST API under /fhir, the ledger under /ledger, and /healthz,\n"
    "/readyz and /metrics. Creates DIR and its database (DIR/vitalog.db, SQLite WAL,\n"
    "synchronous=FULL) on first start and applies schema migrations. Stops on SIGINT\n"
    "or SIGTERM after finishing requests in flight, including clients still sending\n"
    "their body (at most --drain-seconds).\n"
    "\n"
    "options:\n"
    "  --data DIR             data directory (default: ./data)\n"
    "  --listen HOST:PORT     IPv4 address and port (default: 127.0.0.1:8080; port 0 = any);\n"
    "                         a port in use is an error\n"
    "  --port-file FILE       write the bound port number to FILE once listening\n"
    "  --base-url URL         public base URL for Location and links\n"
    "                         (default: http://<Host header>)\n"
    "  --threads N            HTTP worker threads (default: number of CPUs)\n"
    "  --max-body BYTES       largest accepted request body (default: 1048576); larger: 413\n"
    "  --max-depth N          deepest accepted JSON nesting (default: 64); deeper: 400\n"
    "  --max-entries N        most entries of a batch or transaction Bundle (default: 1000);\n"
    "                         more: 413\n"
    "  --max-page-bytes BYTES resource bytes in one search or history page (default:\n"
    "                         4194304); a fuller page ends early with a next link\n"
    "  --timeout SECONDS      idle connection timeout (default: 30)\n"
    "  --header-timeout SECONDS  time to send a request's headers (default: 15)\n"
    "  --max-connections N    concurrent connections (default: 1024)\n"
    "  --max-connections-per-ip N  concurrent connections from one address\n"
    "                         (default: a quarter of --max-connections)\n"
    "  --drain-seconds N      how long requests in flight may take at shutdown (default: 10)\n"
    "  --batch-max N          most write units committed in one transaction (default: 256)\n"
    "  --log-level LEVEL      debug, info, warn or error (default: info)\n"
    "  --origin NAME          ledger origin and key name, used when DIR has no key yet\n"
    "                         (default: vitalog.local/<16 random hex digits>)\n"
    "  --checkpoint-ms MS     sign a checkpoint at most MS after entries arrive (default: 1000)\n"
    "  --tls-cert FILE        serve HTTPS with this PEM certificate (chain) ...\n"
    "  --tls-key FILE         ... and its PEM private key (libmicrohttpd's TLS, GnuTLS)\n"
    "  --insecure-http        allow plain HTTP on a non-loopback address (TLS ends in a\n"
    "                         proxy in front); without it such an address needs TLS\n"
    "  --jwks FILE            also accept JWT bearer tokens (RS256, ES256) signed by a key\n"
    "                         of this JWKS, with --jwt-issuer ISS and --jwt-audience AUD:\n"
    "                         fhirUser Patient/x or Practitioner/x, SMART scopes narrow\n"
    "  --jwt-issuer ISS       the tokens' iss\n"
    "  --jwt-audience AUD     their aud (this server's base URL, usually)\n"
    "  --smart-authorize-url URL, --smart-token-url URL\n"
    "                         the identity provider's endpoints, published in\n"
    "                         /.well-known/smart-configuration and the CapabilityStatement\n"
    "  --cors-origin ORIGIN   let browser apps from ORIGIN (https://app.example.org)\n"
    "                         call the server (repeatable, at most 16; none by default)\n"
    "  --compress-min BYTES   gzip response bodies of at least BYTES (default: 1024) and\n"
    "                         every streamed one, for clients that send Accept-Encoding:\n"
    "                         gzip; 0: never compress\n"
    "  -h, --help             show this help\n"
    "\n"
    "On first start DIR also gets the ledger key: DIR/ledger.key (Ed25519, mode 0600)\n"
    "and DIR/ledger.vkey (its C2SP verifier key, also served at /ledger/key), the key\n"
    "bearer tokens are hashed with (DIR/token.key, 0600), and a bootstrap admin token\n"
    "in DIR/admin.token (0600). Every request except GET /fhir/metadata, /healthz,\n"
    "/readyz and /.well-known/smart-configuration needs Authorization: Bearer <token>\n"
    "(see `vitalog token --help`).\n"
    "Only one server may use DIR at a time (DIR/vitalog.lock). Files are created with\n"
    "umask 077.\n"
    "\n"
    "Logs are JSON lines on stderr, one per request; they never contain bodies.\n";

/* ------------------------------------------------------------------------
 * Signals
 *
 * The handler sets a flag and writes to a pipe; the main thread polls the
 * pipe with a timeout and checks the flag. No SA_RESTART, and never a
 * blocking wait alone: ThreadSanitizer defers a signal's handler until the
 * thread next enters the runtime, which a read() restarted in the kernel
 * never does; poll() returning on its timeout does.
 * ---------------------------------------------------------------------- */

static int g_signal_pipe[2] = {-1, -1};
/* an atomic, not a volatile sig_atomic_t: the handler may run on any
 * thread, and C11 allows lock-free atomics in handlers */
static atomic_int g_signal;

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    ssize_t w;
    atomic_store(&g_signal, sig);
    w = write(g_signal_pipe[1], &b, 1);
    (void)w;
}

static int install_signals(void)
{
    struct sigaction sa;
    if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int wait_for_signal(void)
{
    while (!atomic_load(&g_signal)) {
        struct pollfd p = {g_signal_pipe[0], POLLIN, 0};
        if (poll(&p, 1, 250) > 0) {
            unsigned char b;
            if (read(g_signal_pipe[0], &b, 1) == 1 && !atomic_load(&g_signal))
                atomic_store(&g_signal, b);
        }
    }
    return atomic_load(&g_signal);
}

/* ------------------------------------------------------------------------
 * The ledger key
 * ---------------------------------------------------------------------- */

/* Loads DIR/ledger.key, or creates it (and DIR/ledger.vkey) on first start. */
static int ledger_key_init(const char *dir, const char *origin, vl_ledger_key_t *key)
{
    char path[PATH_MAX], vpath[PATH_MAX], text[512], name[128];
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    int rc;
    snprintf(path, sizeof path, "%s/ledger.key", dir);
    snprintf(vpath, sizeof vpath, "%s/ledger.vkey", dir);
    if (access(path, F_OK) == 0)
        return vl_cli_load_skey("vitalog serve", path, key);
    if (errno != ENOENT) {
        fprintf(stderr, "vitalog serve: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* a published verifier key without its secret: the key was lost; never
     * replace it silently (docs/operations.md) */
    if (access(vpath, F_OK) == 0) {
        fprintf(stderr,
                "vitalog serve: %s is missing but %s exists: restore the ledger key from a "
                "backup; vitalog will not create a new one over an existing ledger\n",
                path, vpath);
        return -1;
    }
    switch (vl_store_has_ledger(dir, &serr)) {
    case 0: break;
    case 1:
        fprintf(stderr,
                "vitalog serve: %s is missing but the database holds a ledger: restore the "
                "ledger key from a backup; vitalog will not create a new one over an existing "
                "ledger\n",
                path);
        return -1;
    default: fprintf(stderr, "vitalog serve: %s\n", serr.message); return -1;
    }
    if (origin) {
        snprintf(name, sizeof name, "%s", origin);
    } else {
        unsigned char r[8];
        char hex[17];
        randombytes_buf(r, sizeof r);
        sodium_bin2hex(hex, sizeof hex, r, sizeof r);
        snprintf(name, sizeof name, "vitalog.local/%s", hex);
    }
    if (vl_ledger_key_generate(name, key, &err) < 0 ||
        vl_ledger_key_skey(key, text, sizeof text - 1) < 0) {
        fprintf(stderr, "vitalog serve: cannot create a ledger key named '%s': %s\n", name,
                vl_error_message(&err));
        vl_error_clear(&err);
        return -1;
    }
    strcat(text, "\n");
    rc = vl_cli_write_new(path, text, strlen(text), 0600);
    sodium_memzero(text, sizeof text); /* the secret key's text */
    if (rc < 0) {
        fprintf(stderr, "vitalog serve: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (vl_ledger_key_vkey(key, text, sizeof text - 1) < 0)
        return -1;
    strcat(text, "\n");
    if (vl_cli_write_new(vpath, text, strlen(text), 0644) < 0) {
        fprintf(stderr, "vitalog serve: cannot write %s: %s\n", vpath, strerror(errno));
        return -1;
    }
    text[strcspn(text, "\n")] = '\0';
    vl_log(VL_LOG_INFO, "ledger key created", json_pack("{s:s}", "vkey", text));
    return 0;
}

/* ------------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------- */

/* A migration's progress on a terminal: one line, redrawn. */
static void backfill_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    fprintf(stderr, "\rvitalog serve: indexing stored versions: %llu of %llu (%.0f%%)",
            (unsigned long long)done, (unsigned long long)total,
            total ? 100.0 * (double)done / (double)total : 100.0);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *s == '\0' || *end || *s == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    unsigned long p;
    if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
        return -1;
    if (parse_uint(colon + 1, 65535, &p) < 0)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* Printable ASCII that never needs JSON escaping (docs/ledger.md 5). */
static int origin_ok(const char *origin)
{
    if (!*origin || strlen(origin) >= 128)
        return 0;
    for (const char *c = origin; *c; c++)
        if (*c <= ' ' || *c > '~' || *c == '+' || *c == '"' || *c == '\\')
            return 0;
    return 1;
}

/* "scheme://host[:port]": no path, no spaces, printable ASCII */
static int cors_origin_ok(const char *o)
{
    const char *p = strstr(o, "://");
    if (!p || p == o || strlen(o) > 200 || strchr(p + 3, '/') || !p[3])
        return 0;
    for (; *o; o++)
        if (*o <= 0x20 || *o > 0x7e)
            return 0;
    return 1;
}

static int write_port_file(const char *path, uint16_t port)
{
    char text[16];
    snprintf(text, sizeof text, "%u\n", (unsigned)port);
    return vl_cli_write_atomic(path, text, strlen(text), 0644);
}

int vl_cli_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'P'},
        {"base-url", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"max-body", required_argument, NULL, 'm'},
        {"max-depth", required_argument, NULL, 'D'},
        {"max-entries", required_argument, NULL, 'E'},
        {"max-page-bytes", required_argument, NULL, 'G'},
        {"timeout", required_argument, NULL, 'T'},
        {"header-timeout", required_argument, NULL, 'H'},
        {"max-connections", required_argument, NULL, 'c'},
        {"max-connections-per-ip", required_argument, NULL, 'I'},
        {"drain-seconds", required_argument, NULL, 'R'},
        {"batch-max", required_argument, NULL, 'B'},
        {"log-level", required_argument, NULL, 'L'},
        {"origin", required_argument, NULL, 'O'},
        {"checkpoint-ms", required_argument, NULL, 'C'},
        {"tls-cert", required_argument, NULL, 'x'},
        {"tls-key", required_argument, NULL, 'k'},
        {"insecure-http", no_argument, NULL, 'i'},
        {"cors-origin", required_argument, NULL, 'o'},
        {"compress-min", required_argument, NULL, 'z'},
        {"jwks", required_argument, NULL, 'j'},
        {"jwt-issuer", required_argument, NULL, 'J'},
        {"jwt-audience", required_argument, NULL, 'A'},
        {"smart-authorize-url", required_argument, NULL, 'Z'},
        {"smart-token-url", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = "./data", *listen = "127.0.0.1:8080", *port_file = NULL, *origin = NULL;
    vl_ledger_key_t key;
    char host[64], first[512];
    vl_http_options_t hopts;
    vl_fhir_options_t fopts;
    vl_store_options_t sopts;
    vl_store_t *store = NULL;
    vl_http_t *http = NULL;
    vl_auth_t *auth = NULL;
    vl_auth_options_t aopts = {NULL, NULL, NULL};
    unsigned char token_key[32];
    unsigned char ingest_key[32]; /* keys $ingest ids; wiped at the end */
    vl_error_t err = VL_ERROR_INIT;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    int opt, sig, rc = 1, lockfd = -1, insecure = 0, bad_rc = 1;
    const char *tls_cert = NULL, *tls_key = NULL, *cors[16], *jwks = NULL, *jwt_iss = NULL,
               *jwt_aud = NULL;
    vl_jwt_t *jwt = NULL;
    size_t n_cors = 0;
    char *cert_pem = NULL, *key_pem = NULL;
    unsigned long v, drain_s = 10;

    memset(&hopts, 0, sizeof hopts);
    memset(&fopts, 0, sizeof fopts);
    memset(&sopts, 0, sizeof sopts);
    memset(&key, 0, sizeof key);
    hopts.listen_fd = -1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': data = optarg; break;
        case 'l': listen = optarg; break;
        case 'P': port_file = optarg; break;
        case 'b': hopts.base_url = optarg; break;
        case 't':
            if (parse_uint(optarg, 1024, &v) < 0 || v == 0)
                goto bad;
            hopts.threads = (unsigned)v;
            break;
        case 'm':
            if (parse_uint(optarg, 1024ul * 1024 * 1024, &v) < 0 || v == 0)
                goto bad;
            hopts.max_body = v;
            break;
        case 'D':
            if (parse_uint(optarg, 10000, &v) < 0 || v == 0)
                goto bad;
            fopts.max_depth = v;
            break;
        case 'E':
            if (parse_uint(optarg, 100000, &v) < 0 || v == 0)
                goto bad;
            fopts.max_bundle_entries = v;
            break;
        case 'G':
            if (parse_uint(optarg, 1024ul * 1024 * 1024, &v) < 0 || v == 0)
                goto bad;
            fopts.max_page_bytes = v;
            break;
        case 'T':
            if (parse_uint(optarg, 86400, &v) < 0 || v == 0)
                goto bad;
            hopts.conn_timeout = (unsigned)v;
            break;
        case 'H':
            if (parse_uint(optarg, 86400, &v) < 0 || v == 0)
                goto bad;
            hopts.header_timeout = (unsigned)v;
            break;
        case 'c':
            if (parse_uint(optarg, 65536, &v) < 0 || v == 0)
                goto bad;
            hopts.max_conns = (unsigned)v;
            break;
        case 'I':
            if (parse_uint(optarg, 65536, &v) < 0 || v == 0)
                goto bad;
            hopts.max_conns_per_ip = (unsigned)v;
            break;
        case 'R':
            if (parse_uint(optarg, 3600, &drain_s) < 0)
                goto bad;
            break;
        case 'B':
            if (parse_uint(optarg, 100000, &v) < 0 || v == 0)
                goto bad;
            sopts.batch_max = (int)v;
            break;
        case 'L':
            if (!strcmp(optarg, "debug"))
                vl_log_set_level(VL_LOG_DEBUG);
            else if (!strcmp(optarg, "info"))
                vl_log_set_level(VL_LOG_INFO);
            else if (!strcmp(optarg, "warn"))
                vl_log_set_level(VL_LOG_WARN);
            else if (!strcmp(optarg, "error"))
                vl_log_set_level(VL_LOG_ERROR);
            else
                goto bad;
            break;
        case 'O':
            if (!origin_ok(optarg)) {
                fprintf(stderr, "vitalog serve: --origin takes 1-127 printable ASCII characters "
                                "except space, +, \" and \\\n");
                return 2;
            }
            origin = optarg;
            break;
        case 'C':
            if (parse_uint(optarg, 3600000, &v) < 0 || v == 0)
                goto bad;
            sopts.checkpoint_ms = (unsigned)v;
            break;
        case 'x': tls_cert = optarg; break;
        case 'k': tls_key = optarg; break;
        case 'i': insecure = 1; break;
        case 'j': jwks = optarg; break;
        case 'J': jwt_iss = optarg; break;
        case 'A': jwt_aud = optarg; break;
        case 'Z': fopts.smart_authorize = optarg; break;
        case 'K': fopts.smart_token = optarg; break;
        case 'o':
            if (n_cors == sizeof cors / sizeof cors[0] || !cors_origin_ok(optarg)) {
                fprintf(stderr, "vitalog serve: --cors-origin takes an origin such as "
                                "https://app.example.org (at most 16)\n");
                return 2;
            }
            cors[n_cors++] = optarg;
            break;
        case 'z':
            if (parse_uint(optarg, 1024ul * 1024 * 1024, &v) < 0)
                goto bad;
            hopts.compress_min = v ? v : VL_HTTP_COMPRESS_OFF;
            break;
        case 'h': fputs(usage_serve, stdout); return 0;
        default: fputs(usage_serve, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vitalog serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (parse_listen(listen, host, sizeof host, &hopts.port) < 0) {
        fprintf(stderr, "vitalog serve: --listen takes HOST:PORT, not '%s'\n", listen);
        return 2;
    }
    hopts.host = host;
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "vitalog serve: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (!tls_cert && !insecure && strncmp(host, "127.", 4) != 0) {
        fprintf(stderr,
                "vitalog serve: %s is not a loopback address: serve it with --tls-cert and "
                "--tls-key, or give --insecure-http if TLS ends before this server\n",
                host);
        return 2;
    }
    if (tls_cert) {
        cert_pem = vl_cli_read_small(tls_cert, 1024 * 1024);
        key_pem = vl_cli_read_small(tls_key, 1024 * 1024);
        if (!cert_pem || !key_pem) {
            fprintf(stderr, "vitalog serve: cannot read %s\n", !cert_pem ? tls_cert : tls_key);
            goto tls_bad;
        }
        hopts.tls_cert_pem = cert_pem;
        hopts.tls_key_pem = key_pem;
    }
    hopts.cors_origins = cors;
    hopts.n_cors_origins = n_cors;
    if (jwks || jwt_iss || jwt_aud) {
        char *text;
        if (!jwks || !jwt_iss || !jwt_aud) {
            fprintf(stderr, "vitalog serve: --jwks, --jwt-issuer and --jwt-audience go together\n");
            bad_rc = 2;
            goto tls_bad;
        }
        text = vl_cli_read_small(jwks, 1024 * 1024);
        if (!text) {
            fprintf(stderr, "vitalog serve: cannot read %s\n", jwks);
            goto tls_bad;
        }
        jwt = vl_jwt_new(text, strlen(text), jwt_iss, jwt_aud, &err);
        free(text);
        if (!jwt) {
            fprintf(stderr, "vitalog serve: %s: %s\n", jwks, vl_error_message(&err));
            vl_error_clear(&err);
            goto tls_bad;
        }
    }

    /* the address before the data directory: a bad one leaves nothing */
    hopts.listen_fd = vl_http_listen(host, hopts.port, &err);
    if (hopts.listen_fd < 0) {
        fprintf(stderr, "vitalog serve: %s\n", vl_error_message(&err));
        vl_error_clear(&err);
        return 1;
    }
    if (install_signals() < 0) {
        perror("vitalog serve: signals");
        goto out;
    }
    umask(077);
    /* Large buffers (bodies, pages, exports) come from mmap and go back to
     * the system when freed: a fixed threshold stops glibc from raising it
     * after each free, which kept a burst's memory for good. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    if (mkdir(data, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "vitalog serve: cannot create %s: %s\n", data, strerror(errno));
        goto out;
    }
    lockfd = vl_cli_lock_data("vitalog serve", data);
    if (lockfd < 0 || ledger_key_init(data, origin, &key) < 0)
        goto out;
    sopts.key = &key;
    sopts.origin = key.name;
    if (vl_store_open(data, &sopts, &store, &serr) < 0) {
        fprintf(stderr, "vitalog serve: %s\n", serr.message);
        vl_log(VL_LOG_ERROR, serr.message, NULL);
        goto out;
    }
    if (vl_cli_first_vkey("vitalog serve", data, first, sizeof first) < 0)
        goto out;
    {
        size_t done = 0;
        int tty = isatty(STDERR_FILENO);
        /* with --base-url, absolute references under it index as the
         * relative ones, as new writes do (without it, the base is each
         * request's Host, which a migration cannot know) */
        char base[1024];
        int has_base = hopts.base_url &&
                       (size_t)snprintf(base, sizeof base, "%s/fhir", hopts.base_url) < sizeof base;
        if (vl_store_backfill(store, vl_fhir_facets_of, has_base ? base : NULL,
                              tty ? backfill_progress : NULL, NULL, &done, &serr) < 0) {
            if (tty)
                fputc('\n', stderr);
            fprintf(stderr, "vitalog serve: indexing stored versions: %s\n", serr.message);
            goto out;
        }
        if (done && tty)
            fputc('\n', stderr);
        if (done)
            vl_log(VL_LOG_INFO, "stored versions indexed (migration)",
                   json_pack("{s:I}", "versions", (json_int_t)done));
    }
    if (vl_auth_token_key_load(data, token_key, &err) < 0) {
        fprintf(stderr, "vitalog serve: %s\n", vl_error_message(&err));
        goto out;
    }
    aopts.store = store;
    aopts.token_key = token_key;
    aopts.jwt = jwt;
    jwt = NULL; /* auth owns it from here, even when vl_auth_new fails */
    auth = vl_auth_new(&aopts, &err);
    sodium_memzero(token_key, sizeof token_key);
    if (!auth) {
        fprintf(stderr, "vitalog serve: %s\n", vl_error_message(&err));
        goto out;
    }
    switch (vl_auth_bootstrap(store, vl_auth_key(auth), data, &err)) {
    case 1:
        vl_log(VL_LOG_INFO, "bootstrap admin token written",
               json_pack("{s:s}", "file", "admin.token"));
        break;
    case 0: break;
    default: fprintf(stderr, "vitalog serve: %s\n", vl_error_message(&err)); goto out;
    }
    fopts.policy = vl_auth_policy(auth);
    fopts.cors = n_cors > 0;
    fopts.smart_issuer = jwks ? jwt_iss : NULL; /* JWTs accepted: SMART */
    fopts.auth = auth;
    fopts.store = store;
    fopts.ledger_key = &key;
    fopts.ledger_first_vkey = first;
    if (vl_auth_key_file_load(data, VL_INGEST_KEY_FILE, ingest_key, &err) < 0) {
        fprintf(stderr, "vitalog serve: %s\n", vl_error_message(&err));
        goto out;
    }
    fopts.ingest_key = ingest_key;
    if (vl_http_start(&hopts, &fopts, &http, &err) < 0) {
        hopts.listen_fd = -1; /* taken */
        fprintf(stderr, "vitalog serve: %s\n", vl_error_message(&err));
        goto out;
    }
    hopts.listen_fd = -1;
    if (port_file && write_port_file(port_file, vl_http_port(http)) < 0) {
        fprintf(stderr, "vitalog serve: cannot write %s: %s\n", port_file, strerror(errno));
        goto out;
    }
    vl_log(VL_LOG_INFO, "listening",
           json_pack("{s:s,s:i,s:s,s:s}", "host", host, "port", (int)vl_http_port(http), "data",
                     data, "version", VL_VERSION));
    sig = wait_for_signal();
    vl_log(VL_LOG_INFO, "shutting down", json_pack("{s:i}", "signal", sig));
    rc = 0;
out:
    vl_error_clear(&err);
    if (hopts.listen_fd >= 0)
        close(hopts.listen_fd);
    vl_http_stop(http, (unsigned)drain_s * 1000);
    sodium_memzero(ingest_key, sizeof ingest_key);
    if (key_pem)
        sodium_memzero(key_pem, strlen(key_pem));
    free(key_pem);
    free(cert_pem);
    vl_auth_free(auth);
    vl_store_close(store);
    sodium_memzero(&key, sizeof key);
    if (lockfd >= 0)
        close(lockfd);
    if (rc == 0)
        vl_log(VL_LOG_INFO, "stopped", NULL);
    return rc;
tls_bad:
    free(cert_pem);
    free(key_pem);
    vl_jwt_free(jwt);
    return bad_rc;
bad:
    fprintf(stderr, "vitalog serve: bad value '%s' for an option\n%s", optarg, usage_serve);
    if (hopts.listen_fd >= 0)
        close(hopts.listen_fd);
    return 2;
}
