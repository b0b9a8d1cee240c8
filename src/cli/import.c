/*
 * vitalog — cli/import.c: `vitalog import healthkit`, a patient's whole
 * Apple Health history (export.xml, gigabytes) in constant memory.
 *
 * DESIGN NOTES
 *
 * 1. One path for every reading. A producer thread reads export.xml with
 *    libxml2's xmlReader (ingest/healthkit_xml.c) and writes each record
 *    as one HealthKit JSON sample line into a pipe; the consumer sends the
 *    lines as the NDJSON body of ONE $ingest request (format=healthkit):
 *      --server URL   over HTTP with libcurl (chunked upload), as any app;
 *      --data DIR     in this process, through the same interaction layer
 *                     the server runs (vl_fhir_handle + vl_fhir_feed), as
 *                     the owner of the directory (an admin), holding the
 *                     directory's lock: a running server must be stopped
 *                     (two writers would fork the ledger), or use --server.
 *    So the readings, identifiers, Devices, units, plausibility and ledger
 *    entries are exactly those of POST $ingest, and a second import of the
 *    same file changes nothing.
 *
 * 2. Memory: the pipe's buffer, the request's bounded in-flight window
 *    (fhir/ingest.c) and the answer read as a stream (only its totals and
 *    the first rejections are kept).
 *
 * 3. Progress: on a terminal, a bar on stderr from the bytes of the file
 *    read so far.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "vitalog/auth.h"
#include "vitalog/cli.h"
#include "vitalog/fhir.h"
#include "vitalog/ingest.h"

static const char usage_import[] =
    "usage: vitalog import healthkit --patient REF (--data DIR | --server URL --token T)\n"
    "                                [--tz ZONE] [--base-url URL] EXPORT.xml\n"
    "\n"
    "Imports a patient's Apple Health export (export.xml from the Health app's\n"
    "\"Export All Health Data\", any size, read as a stream) as vital-sign\n"
    "Observations: each record goes through POST /fhir/Observation/$ingest with\n"
    "format=healthkit, so a record imported twice is stored once (docs/ingest.md).\n"
    "Blood-pressure correlations count once, not also as their two member records.\n"
    "\n"
    "  --patient REF   Patient/<id> the records are of (it must exist)\n"
    "  --data DIR      write into the data directory DIR directly (the server on\n"
    "                  it must be stopped: the import takes its lock)\n"
    "  --server URL    send to a running server (e.g. http://127.0.0.1:8080) ...\n"
    "  --token T       ... with this bearer token (or the file @PATH holding it)\n"
    "  --tz ZONE       zone of times without one (export.xml times carry theirs)\n"
    "  --base-url URL  with --data: the server's public base URL (default\n"
    "                  http://127.0.0.1:8080), as vitalog serve --base-url\n"
    "\n"
    "Prints the totals (records read, readings created, updated, unchanged,\n"
    "rejected) and the first rejections. Exit status 0 when the import ran to the\n"
    "end (rejected readings included), 1 when it failed, 2 for bad usage.\n";

#define CMD "vitalog import"
#define MAX_SHOWN_REJECTIONS 10

/* ------------------------------------------------------------------------
 * The producer: export.xml -> NDJSON lines into a pipe
 * ---------------------------------------------------------------------- */

typedef struct producer {
    int xml_fd, out_fd;
    uint64_t size, records;
    int tty;
    int rc;
    vl_error_t err;
} producer_t;

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int on_sample(void *ctx, json_t *sample)
{
    producer_t *p = ctx;
    size_t len;
    char *line = vl_json_dump(sample, &len);
    int rc;
    if (!line)
        return -1;
    line[len] = '\n'; /* replaces the NUL: write len + 1 bytes */
    rc = write_all(p->out_fd, line, len + 1);
    free(line);
    p->records++;
    return rc;
}

static void on_progress(void *ctx, uint64_t bytes)
{
    producer_t *p = ctx;
    if (!p->tty || !p->size)
        return;
    {
        int pct = (int)(bytes * 100 / p->size), bar = pct / 4;
        fprintf(stderr, "\r" CMD ": [%.*s%*s] %3d%%  %llu records", bar,
                "#########################", 25 - bar, "", pct, (unsigned long long)p->records);
    }
}

static void *produce(void *arg)
{
    producer_t *p = arg;
    p->rc = vl_ingest_healthkit_xml(p->xml_fd, on_sample, p, on_progress, p, &p->err);
    close(p->out_fd); /* the end of the body */
    return NULL;
}

/* ------------------------------------------------------------------------
 * The answer: the totals and the first rejections, read as a stream
 * ---------------------------------------------------------------------- */

typedef struct answer {
    char head[8192]; /* the beginning: the Bundle's meta with the totals */
    size_t head_len;
    size_t shown, rejected_seen;
    char tail[512]; /* a window for the rejections' diagnostics */
    size_t tail_len;
} answer_t;

static void answer_take(answer_t *a, const char *data, size_t n)
{
    size_t room = sizeof a->head - 1 - a->head_len;
    size_t k = n < room ? n : room;
    memcpy(a->head + a->head_len, data, k);
    a->head_len += k;
    a->head[a->head_len] = '\0';
    /* the diagnostics of rejected readings, wherever they are in the stream */
    for (size_t i = 0; i < n; i++) {
        char *d;
        if (a->tail_len == sizeof a->tail - 1) {
            memmove(a->tail, a->tail + 256, a->tail_len - 256);
            a->tail_len -= 256;
        }
        a->tail[a->tail_len++] = data[i];
        a->tail[a->tail_len] = '\0';
        if (data[i] != '"' || !(d = strstr(a->tail, "\"diagnostics\":\"")))
            continue;
        {
            char *text = d + 15, *end = strchr(text, '"');
            while (end && end[-1] == '\\')
                end = strchr(end + 1, '"');
            if (!end)
                continue;
            if (a->shown < MAX_SHOWN_REJECTIONS)
                fprintf(stderr, CMD ": rejected: %.*s\n", (int)(end - text), text);
            a->shown++;
            a->tail_len = 0;
        }
    }
}

static long long total_of(const answer_t *a, const char *name)
{
    char key[64];
    const char *p;
    snprintf(key, sizeof key, "{\"url\":\"%s\",\"valueUnsignedInt\":", name);
    p = strstr(a->head, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static int report(const answer_t *a, const producer_t *p, int status)
{
    if (p->tty)
        fputc('\n', stderr);
    /* the server's answer first: when it refused early, the records' pipe
     * broke because of it */
    if (status != 200) {
        const char *d = strstr(a->head, "\"diagnostics\":\"");
        fprintf(stderr, CMD ": the server answered %d%s%.*s\n", status, d ? ": " : "",
                d ? (int)strcspn(d + 15, "\"") : 0, d ? d + 15 : "");
        return 1;
    }
    if (p->rc < 0) {
        fprintf(stderr, CMD ": %s\n",
                p->err.status ? vl_error_message(&p->err) : "the records could not be sent");
        return 1;
    }
    printf("records %llu, readings %lld: created %lld, updated %lld, unchanged %lld, rejected "
           "%lld\n",
           (unsigned long long)p->records, total_of(a, "readings"), total_of(a, "created"),
           total_of(a, "updated"), total_of(a, "unchanged"), total_of(a, "rejected"));
    return 0;
}

/* ------------------------------------------------------------------------
 * --server: one chunked POST with libcurl
 * ---------------------------------------------------------------------- */

static size_t curl_read(char *buf, size_t size, size_t n, void *ctx)
{
    int fd = *(int *)ctx;
    ssize_t r;
    do
        r = read(fd, buf, size * n);
    while (r < 0 && errno == EINTR);
    return r < 0 ? CURL_READFUNC_ABORT : (size_t)r;
}

static size_t curl_write(char *data, size_t size, size_t n, void *ctx)
{
    answer_take(ctx, data, size * n);
    return size * n;
}

static int send_http(const char *server, const char *token, const char *query, int in_fd,
                     answer_t *a, long *status)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char *url = NULL, *auth = NULL;
    CURLcode rc;
    size_t n = strlen(server);
    if (!c)
        return -1;
    while (n && server[n - 1] == '/')
        n--;
    if (asprintf(&url, "%.*s/fhir/Observation/$ingest?%s", (int)n, server, query) < 0 ||
        asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
        curl_easy_cleanup(c);
        free(url);
        return -1;
    }
    h = curl_slist_append(h, "Content-Type: application/x-ndjson");
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Accept: application/fhir+json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, curl_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &in_fd);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (rc != CURLE_OK)
        fprintf(stderr, CMD ": %s: %s\n", server, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    sodium_memzero(auth, strlen(auth));
    free(auth);
    free(url);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * --data: the interaction layer in this process, as the directory's owner
 * ---------------------------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken;
} waiter_t;

static void wake(void *arg)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->woken = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void wait_woken(waiter_t *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->woken)
        pthread_cond_wait(&w->cv, &w->mu);
    w->woken = 0;
    pthread_mutex_unlock(&w->mu);
}

static int send_local(const char *data, const char *base_url, vl_params_t *params, int in_fd,
                      answer_t *a, long *status)
{
    vl_ledger_key_t key;
    vl_store_options_t sopts;
    vl_store_err_t serr = VL_STORE_ERR_INIT;
    vl_error_t err = VL_ERROR_INIT;
    vl_store_t *store = NULL;
    vl_fhir_t *f = NULL;
    vl_fhir_exchange_t *x = NULL;
    vl_fhir_response_t res;
    vl_fhir_options_t fopts;
    vl_fhir_request_t req;
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    unsigned char ingest_key[32];
    char path[4096], *buf = NULL;
    int lockfd = -1, rc = -1, fed;
    memset(&res, 0, sizeof res);
    snprintf(path, sizeof path, "%s/ledger.key", data);
    if (vl_cli_check_data(CMD, data) < 0 || (lockfd = vl_cli_lock_data(CMD, data)) < 0)
        return -1;
    if (vl_cli_load_skey(CMD, path, &key) < 0) {
        close(lockfd);
        return -1;
    }
    if (vl_auth_key_file_load(data, VL_INGEST_KEY_FILE, ingest_key, &err) < 0) {
        fprintf(stderr, CMD ": %s\n", vl_error_message(&err));
        goto out;
    }
    memset(&sopts, 0, sizeof sopts);
    sopts.key = &key;
    sopts.origin = key.name;
    if (vl_store_open(data, &sopts, &store, &serr) < 0) {
        fprintf(stderr, CMD ": cannot open the store in %s: %s\n", data, serr.message);
        goto out;
    }
    memset(&fopts, 0, sizeof fopts);
    fopts.store = store;
    fopts.policy = &vl_auth_owner_policy;
    fopts.ingest_key = ingest_key;
    if (!(f = vl_fhir_new(&fopts)) || !(buf = malloc(64 * 1024))) {
        fprintf(stderr, CMD ": out of memory\n");
        goto out;
    }
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/fhir/Observation/$ingest";
    req.params = params;
    req.base_url = base_url;
    req.content_type = "application/x-ndjson";
    req.body_streamed = 1;
    fed = vl_fhir_handle(f, &req, wake, &w, &x, &res);
    while (fed == 2) {
        ssize_t n = read(in_fd, buf, 64 * 1024);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, CMD ": reading the records: %s\n", strerror(errno));
            n = 0; /* end the body: what was sent is stored and answered */
        }
        if (vl_fhir_feed(x, buf, (size_t)n, &res) == 1) {
            wait_woken(&w);
            if (!n)
                vl_fhir_resume(x, &res);
        }
        if (!n)
            break;
    }
    if (fed == 1) { /* cannot happen for a streamed body; handled all the same */
        wait_woken(&w);
        vl_fhir_resume(x, &res);
    }
    *status = res.status;
    if (res.stream) {
        ssize_t n;
        while ((n = res.stream(res.stream_ctx, buf, 64 * 1024)) > 0)
            answer_take(a, buf, (size_t)n);
    } else if (res.body) {
        answer_take(a, res.body, res.body_len);
    }
    rc = 0;
out:
    vl_fhir_response_free(&res);
    vl_fhir_exchange_free(x);
    vl_fhir_free(f);
    vl_store_close(store);
    free(buf);
    vl_error_clear(&err);
    sodium_memzero(ingest_key, sizeof ingest_key);
    sodium_memzero(&key, sizeof key);
    close(lockfd);
    return rc;
}

/* ------------------------------------------------------------------------
 * The command
 * ---------------------------------------------------------------------- */

/* --token T or --token @FILE */
static char *token_arg(const char *arg)
{
    char *t;
    size_t n;
    if (arg[0] != '@')
        return strdup(arg);
    if (!(t = vl_cli_read_small(arg + 1, 4096)))
        return NULL;
    n = strlen(t);
    while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
        t[--n] = '\0';
    return t;
}

int vl_cli_import(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"patient", required_argument, NULL, 'p'}, {"data", required_argument, NULL, 'd'},
        {"server", required_argument, NULL, 's'},  {"token", required_argument, NULL, 't'},
        {"tz", required_argument, NULL, 'z'},      {"base-url", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *patient = NULL, *data = NULL, *server = NULL, *token = NULL, *tz = NULL,
               *base_url = "http://127.0.0.1:8080", *file;
    char *secret = NULL;
    producer_t p;
    pthread_t thread;
    answer_t a;
    vl_params_t params;
    vl_buf_t query = VL_BUF_INIT(0);
    struct stat st;
    int pipefd[2], opt, rc = 1;
    long status = 0;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p': patient = optarg; break;
        case 'd': data = optarg; break;
        case 's': server = optarg; break;
        case 't': token = optarg; break;
        case 'z': tz = optarg; break;
        case 'b': base_url = optarg; break;
        case 'h': fputs(usage_import, stdout); return 0;
        default: fputs(usage_import, stderr); return 2;
        }
    }
    if (optind + 2 != argc || strcmp(argv[optind], "healthkit") != 0 || !patient ||
        (!data == !server) || (server && !token)) {
        fputs(usage_import, stderr);
        return 2;
    }
    file = argv[optind + 1];
    if (server && !(secret = token_arg(token))) {
        fprintf(stderr, CMD ": cannot read the token %s\n", token);
        return 2;
    }
    memset(&p, 0, sizeof p);
    memset(&a, 0, sizeof a);
    vl_params_init(&params);
    if ((p.xml_fd = open(file, O_RDONLY | O_CLOEXEC)) < 0 || fstat(p.xml_fd, &st) < 0) {
        fprintf(stderr, CMD ": cannot read %s: %s\n", file, strerror(errno));
        goto out;
    }
    p.size = (uint64_t)st.st_size;
    p.tty = isatty(2);
    if (vl_params_add(&params, "format", "healthkit") < 0 ||
        vl_params_add(&params, "patient", patient) < 0 ||
        (tz && vl_params_add(&params, "tz", tz) < 0))
        goto out;
    for (size_t i = 0; i < params.n; i++) {
        char *v = curl_easy_escape(NULL, params.items[i].value, 0);
        vl_buf_printf(&query, "%s%s=%s", i ? "&" : "", params.items[i].name, v ? v : "");
        if (!v)
            query.failed = 1;
        curl_free(v);
    }
    if (query.failed || pipe2(pipefd, O_CLOEXEC) < 0)
        goto out;
    signal(SIGPIPE, SIG_IGN); /* a failed consumer makes the producer's write fail instead */
    p.out_fd = pipefd[1];
    if (pthread_create(&thread, NULL, produce, &p) != 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        goto out;
    }
    if (server)
        rc = send_http(server, secret, query.data, pipefd[0], &a, &status);
    else
        rc = send_local(data, base_url, &params, pipefd[0], &a, &status);
    close(pipefd[0]); /* unblocks the producer if the consumer stopped early */
    pthread_join(thread, NULL);
    rc = rc < 0 ? 1 : report(&a, &p, (int)status);
out:
    if (p.xml_fd > 0)
        close(p.xml_fd);
    vl_error_clear(&p.err);
    vl_params_free(&params);
    vl_buf_free(&query);
    if (secret)
        sodium_memzero(secret, strlen(secret));
    free(secret);
    return rc;
}
