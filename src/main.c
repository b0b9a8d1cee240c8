/*
 * vitalog — the command line. Thin: parses arguments and calls modules.
 *
 *   vitalog serve --data DIR --listen HOST:PORT [options]
 *   vitalog --help | vitalog CMD --help | vitalog --version
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>

#include "vitalog/cli.h"
#include "vitalog/http.h"
#include "vitalog/ledger.h"
#include "vitalog/store.h"
#include "vitalog/util.h"

static const char usage_main[] =
    "usage: vitalog <command> [options]\n"
    "\n"
    "vitalog is a FHIR R4 (4.0.1) server for biometric and wearable data,\n"
    "storing resources in SQLite.\n"
    "\n"
    "commands:\n"
    "  serve      run the FHIR server\n"
    "  verify     verify a ledger export (or a data directory) offline\n"
    "  export     write the ledger export or the records export of a data directory\n"
    "  key        show or rotate the ledger signing key\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help (vitalog CMD --help for a command)\n"
    "  --version      print the version\n";

static const char usage_serve[] =
    "usage: vitalog serve [--data DIR] [--listen HOST:PORT] [options]\n"
    "\n"
    "Serves the FHIR REST API under /fhir, plus /healthz, /readyz and /metrics.\n"
    "Creates DIR and its database (DIR/vitalog.db, SQLite WAL, synchronous=FULL)\n"
    "on first start and applies schema migrations. Stops on SIGINT or SIGTERM after\n"
    "finishing in-flight requests.\n"
    "\n"
    "options:\n"
    "  --data DIR            data directory (default: ./data)\n"
    "  --listen HOST:PORT    IPv4 address and port (default: 127.0.0.1:8080; port 0 = any)\n"
    "  --port-file FILE      write the bound port number to FILE once listening\n"
    "  --base-url URL        public base URL for Location and links\n"
    "                        (default: http://<Host header>)\n"
    "  --threads N           HTTP worker threads (default: number of CPUs)\n"
    "  --max-body BYTES      largest accepted request body (default: 1048576); larger: 413\n"
    "  --max-depth N         deepest accepted JSON nesting (default: 64); deeper: 400\n"
    "  --timeout SECONDS     idle connection timeout (default: 30)\n"
    "  --max-connections N   concurrent connections (default: 1024)\n"
    "  --batch-max N         most writes committed in one transaction (default: 256)\n"
    "  --log-level LEVEL     debug, info, warn or error (default: info)\n"
    "  --origin NAME         ledger origin and key name, used when DIR has no key yet\n"
    "                        (default: vitalog.local/<16 random hex digits>)\n"
    "  --checkpoint-ms MS    sign a checkpoint at most MS after entries arrive (default: 1000)\n"
    "  -h, --help            show this help\n"
    "\n"
    "On first start DIR also gets the ledger key: DIR/ledger.key (Ed25519, mode 0600)\n"
    "and DIR/ledger.vkey (its C2SP verifier key, also served at /ledger/key). Only one\n"
    "server may use DIR at a time (DIR/vitalog.lock).\n"
    "\n"
    "Logs are JSON lines on stderr, one per request; they never contain bodies.\n";

/* Shutdown signals. The handler stores the signal number in g_signal and
 * writes a byte into a pipe; the main thread waits for them in
 * wait_for_signal(). The pipe wakes it whichever thread the kernel picks
 * for the handler, including threads a sanitizer runtime starts (unlike
 * sigwait()). g_signal is a lock-free atomic int: C11 (7.14.1.1) allows a
 * handler to store to one just as to a volatile sig_atomic_t, and unlike
 * the latter it is also a correct flag when the handler runs on another
 * thread than the one that reads it (ThreadSanitizer checks that).
 *
 * The wait is a poll() with a timeout, not a blocking read(), because the
 * handler does not always run when the signal arrives: ThreadSanitizer
 * queues a signal and runs the handler only when the thread that got it
 * next passes one of its interceptors. With SA_RESTART (kept for the other
 * threads: their I/O should not see EINTR) a read() that the signal
 * interrupted was restarted inside the interceptor, so the handler never
 * ran and the server never stopped. poll() is never restarted, and its
 * timeout bounds the wait for a handler that runs late, on this thread or
 * another: every SIGNAL_POLL_MS the flag is read again. Four wake-ups a
 * second cost nothing measurable; in plain builds the pipe ends the wait
 * at once. */
#define SIGNAL_POLL_MS 250
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal flag must be lock-free");
static int g_signal_pipe[2] = {-1, -1};
static atomic_int g_signal;

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    atomic_store(&g_signal, sig);
    ssize_t w = write(g_signal_pipe[1], &b, 1);
    (void)w; /* a full pipe already holds a wake-up */
    errno = saved;
}

/* Waits until SIGINT or SIGTERM arrived; returns its number. */
static int wait_for_signal(void)
{
    struct pollfd p = {.fd = g_signal_pipe[0], .events = POLLIN};
    int sig;
    while ((sig = atomic_load(&g_signal)) == 0)
        (void)poll(&p, 1, SIGNAL_POLL_MS); /* EINTR and timeouts: read the flag again */
    return sig;
}

static int install_signals(void)
{
    struct sigaction sa;
    if (pipe(g_signal_pipe) < 0)
        return -1;
    /* the handler must never block on a full pipe */
    if (fcntl(g_signal_pipe[1], F_SETFL, O_NONBLOCK) < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Writes a new file durably: O_EXCL (never overwrites), fsync. */
static int write_new_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    size_t len = strlen(data);
    if (fd < 0)
        return -1;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0) {
        close(fd);
        unlink(path);
        return -1;
    }
    return close(fd);
}

/* Loads DIR/ledger.key, or creates it (and DIR/ledger.vkey) on first start. */
static int ledger_key_init(const char *dir, const char *origin, vl_ledger_key_t *key,
                           vl_error_t *err)
{
    char path[PATH_MAX], text[512], name[128];
    FILE *f;
    snprintf(path, sizeof path, "%s/ledger.key", dir);
    f = fopen(path, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
            text[--n] = '\0';
        if (vl_ledger_key_parse_skey(text, key, err) < 0)
            return vl_error_set(err, 500, "exception", NULL, "%s is not a valid ledger key", path);
        return 0;
    }
    if (errno != ENOENT)
        return vl_error_set(err, 500, "exception", NULL, "cannot read %s: %s", path,
                            strerror(errno));
    {
        /* a published verifier key without its secret: the key was lost;
         * never replace it silently (docs/operations.md) */
        char vpath[PATH_MAX];
        snprintf(vpath, sizeof vpath, "%s/ledger.vkey", dir);
        if (access(vpath, F_OK) == 0)
            return vl_error_set(err, 500, "exception", NULL,
                                "%s is missing but %s exists: restore the ledger key from a "
                                "backup; vitalog will not create a new one over an existing "
                                "ledger",
                                path, vpath);
        switch (vl_store_has_ledger(dir, err)) {
        case 0:
            break;
        case 1:
            return vl_error_set(err, 500, "exception", NULL,
                                "%s is missing but the database holds a ledger: restore the "
                                "ledger key from a backup; vitalog will not create a new one "
                                "over an existing ledger",
                                path);
        default:
            return -1;
        }
    }
    if (origin) {
        /* printable ASCII that never needs JSON escaping (docs/ledger.md 5) */
        for (const char *c = origin; *c; c++)
            if (*c <= ' ' || *c > '~' || *c == '+' || *c == '"' || *c == '\\')
                return vl_error_set(err, 400, "invalid", NULL,
                                    "--origin may hold printable ASCII except space, +, \" and \\");
        if (!*origin || strlen(origin) >= sizeof name)
            return vl_error_set(err, 400, "invalid", NULL, "--origin must be 1-127 characters");
        snprintf(name, sizeof name, "%s", origin);
    } else {
        unsigned char r[8];
        char hex[17];
        randombytes_buf(r, sizeof r);
        sodium_bin2hex(hex, sizeof hex, r, sizeof r);
        snprintf(name, sizeof name, "vitalog.local/%s", hex);
    }
    if (vl_ledger_key_generate(name, key, err) < 0 ||
        vl_ledger_key_skey(key, text, sizeof text) < 0)
        return vl_error_set(err, 500, "exception", NULL, "cannot create a ledger key named '%s'",
                            name);
    strncat(text, "\n", sizeof text - strlen(text) - 1);
    if (write_new_file(path, text, 0600) < 0) {
        sodium_memzero(text, sizeof text);
        return vl_error_set(err, 500, "exception", NULL, "cannot write %s: %s", path,
                            strerror(errno));
    }
    sodium_memzero(text, sizeof text);
    snprintf(path, sizeof path, "%s/ledger.vkey", dir);
    if (vl_ledger_key_vkey(key, text, sizeof text - 1) < 0)
        return vl_error_set(err, 500, "exception", NULL, "cannot format the verifier key");
    strncat(text, "\n", sizeof text - strlen(text) - 1);
    if (write_new_file(path, text, 0644) < 0)
        return vl_error_set(err, 500, "exception", NULL, "cannot write %s: %s", path,
                            strerror(errno));
    vl_log(VL_LOG_INFO, "ledger key created", json_pack("{s:s}", "vkey", text));
    return 0;
}

/* One server per data directory: an exclusive lock held while serving. */
static int lock_data_dir(const char *dir, vl_error_t *err)
{
    char path[PATH_MAX];
    int fd;
    snprintf(path, sizeof path, "%s/vitalog.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return vl_error_set(err, 500, "exception", NULL, "cannot open %s: %s", path,
                            strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return vl_error_set(err, 500, "exception", NULL,
                            "%s is in use by another vitalog process", dir);
    }
    return fd; /* kept open (and locked) until exit */
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

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[PATH_MAX];
    FILE *f;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", (unsigned)port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'P'},
        {"base-url", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"max-body", required_argument, NULL, 'm'},
        {"max-depth", required_argument, NULL, 'D'},
        {"timeout", required_argument, NULL, 'T'},
        {"max-connections", required_argument, NULL, 'c'},
        {"batch-max", required_argument, NULL, 'B'},
        {"log-level", required_argument, NULL, 'L'},
        {"origin", required_argument, NULL, 'O'},
        {"checkpoint-ms", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = "./data", *listen = "127.0.0.1:8080", *port_file = NULL, *origin = NULL;
    vl_ledger_key_t key;
    char host[64];
    vl_http_options_t hopts = {0};
    vl_store_options_t sopts = {0};
    vl_store_t *store = NULL;
    vl_http_t *http = NULL;
    vl_error_t err = VL_ERROR_INIT;
    int opt, sig = 0, rc = 1;
    unsigned long v;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd': data = optarg; break;
        case 'l': listen = optarg; break;
        case 'P': port_file = optarg; break;
        case 'b': hopts.base_url = optarg; break;
        case 't':
            if (parse_uint(optarg, 1024, &v) < 0 || v == 0) goto bad;
            hopts.threads = (unsigned)v;
            break;
        case 'm':
            if (parse_uint(optarg, 1024ul * 1024 * 1024, &v) < 0 || v == 0) goto bad;
            hopts.max_body = v;
            break;
        case 'D':
            if (parse_uint(optarg, 10000, &v) < 0 || v == 0) goto bad;
            hopts.max_depth = v;
            break;
        case 'T':
            if (parse_uint(optarg, 86400, &v) < 0 || v == 0) goto bad;
            hopts.conn_timeout = (unsigned)v;
            break;
        case 'c':
            if (parse_uint(optarg, 65536, &v) < 0 || v == 0) goto bad;
            hopts.max_conns = (unsigned)v;
            break;
        case 'B':
            if (parse_uint(optarg, 100000, &v) < 0 || v == 0) goto bad;
            sopts.batch_max = (int)v;
            break;
        case 'L':
            if (!strcmp(optarg, "debug")) vl_log_set_level(VL_LOG_DEBUG);
            else if (!strcmp(optarg, "info")) vl_log_set_level(VL_LOG_INFO);
            else if (!strcmp(optarg, "warn")) vl_log_set_level(VL_LOG_WARN);
            else if (!strcmp(optarg, "error")) vl_log_set_level(VL_LOG_ERROR);
            else goto bad;
            break;
        case 'O': origin = optarg; break;
        case 'C':
            if (parse_uint(optarg, 3600000, &v) < 0 || v == 0) goto bad;
            sopts.checkpoint_ms = (unsigned)v;
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

    if (install_signals() < 0) {
        perror("vitalog serve: signals");
        return 1;
    }

    memset(&key, 0, sizeof key);
    if (mkdir(data, 0700) < 0 && errno != EEXIST) {
        vl_error_set(&err, 500, "exception", NULL, "cannot create %s: %s", data, strerror(errno));
        goto out;
    }
    if (lock_data_dir(data, &err) < 0 || ledger_key_init(data, origin, &key, &err) < 0)
        goto out;
    sopts.key = &key;
    sopts.origin = key.name;
    hopts.ledger_key = &key;
    if (vl_store_open(data, &sopts, &store, &err) < 0)
        goto out;
    if (vl_http_start(&hopts, store, &http, &err) < 0)
        goto out;
    if (port_file && write_port_file(port_file, vl_http_port(http)) < 0) {
        vl_error_set(&err, 500, "exception", NULL, "cannot write %s: %s", port_file,
                     strerror(errno));
        goto out;
    }
    vl_log(VL_LOG_INFO, "listening",
           json_pack("{s:s,s:i,s:s,s:s}", "host", host, "port", (int)vl_http_port(http), "data",
                     data, "version", VL_VERSION));
    sig = wait_for_signal();
    vl_log(VL_LOG_INFO, "shutting down", json_pack("{s:i}", "signal", sig));
    rc = 0;
out:
    if (err.status) {
        vl_log(VL_LOG_ERROR, vl_error_message(&err), NULL);
        fprintf(stderr, "vitalog serve: %s\n", vl_error_message(&err));
    }
    vl_error_clear(&err);
    vl_http_stop(http, 10000);
    vl_store_close(store);
    sodium_memzero(&key, sizeof key);
    if (rc == 0)
        vl_log(VL_LOG_INFO, "stopped", NULL);
    return rc;
bad:
    fprintf(stderr, "vitalog serve: bad value '%s' for an option\n%s", optarg, usage_serve);
    return 2;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fputs("vitalog: libsodium failed to initialize\n", stderr);
        return 1;
    }
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vitalog %s (FHIR %s)\n", VL_VERSION, VL_FHIR_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify"))
        return vl_cli_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export"))
        return vl_cli_export(argc - 1, argv + 1);
    if (!strcmp(argv[1], "key"))
        return vl_cli_key(argc - 1, argv + 1);
    fprintf(stderr, "vitalog: unknown command '%s'\n\n%s", argv[1], usage_main);
    return 2;
}
