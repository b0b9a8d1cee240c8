/*
 * bare_server: the baseline of the vitalog benchmarks.
 *
 * A minimal libmicrohttpd server with the same threading model as vitalog
 * (internal polling thread, poll(), a thread pool of one
 * thread per CPU). It reads and discards every request body and answers
 * every request 201 with a fixed small FHIR JSON body. Whatever rate it
 * reaches on a machine is the ceiling that libmicrohttpd and the load
 * generator allow there; bench/run.sh reports vitalog's rate as a fraction
 * of it.
 *
 *   bare_server --listen HOST:PORT [--port-file FILE]
 *
 * PORT may be 0 (the kernel picks one); the bound port is then written to
 * FILE (atomically, via rename) once the server is listening. SIGTERM and
 * SIGINT stop it cleanly (exit status 0).
 */
#define _GNU_SOURCE
#include <microhttpd.h>

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char BODY[] = "{\"resourceType\":\"OperationOutcome\"}";

static struct MHD_Response *g_response;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    static int first_call_marker;

    /* First call for this request: headers only, ask for the body. */
    if (*con_cls == NULL) {
        *con_cls = &first_call_marker;
        return MHD_YES;
    }
    /* Body chunks: discard them. */
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* Body complete (or there was none): answer. */
    return MHD_queue_response(conn, MHD_HTTP_CREATED, g_response);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bare_server --listen HOST:PORT [--port-file FILE]\n");
}

/* Splits HOST:PORT (HOST may be [v6addr]) and resolves it. */
static int resolve_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0')
        return -1;
    size_t hlen = (size_t)(colon - spec);
    if (hlen >= sizeof host)
        return -1;
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    char *h = host;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h[hlen - 1] = '\0';
        h++;
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return -1;

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    int ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen_spec = NULL, *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_spec = argv[++i];
        } else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (listen_spec == NULL) {
        usage(stderr);
        return 2;
    }

    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    if (resolve_listen(listen_spec, &addr, &addr_len) != 0) {
        fprintf(stderr, "bare_server: bad --listen value: %s\n", listen_spec);
        return 2;
    }

    /* Block the stop signals before MHD starts its threads, so that they
     * inherit the mask and only sigwait() below sees the signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
        perror("bare_server: pthread_sigmask");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    g_response =
        MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
    if (g_response == NULL || MHD_add_response_header(g_response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                      "application/fhir+json") != MHD_YES) {
        fprintf(stderr, "bare_server: cannot create the response\n");
        return 1;
    }

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;

    /* the same threading model as vitalog (src/http/server.c): a pool of
     * threads on poll() */
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;

    struct MHD_Daemon *d =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)ncpu,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bare_server: cannot listen on %s\n", listen_spec);
        return 1;
    }

    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info != NULL ? info->port : 0;
    if (port == 0) {
        fprintf(stderr, "bare_server: cannot determine the bound port\n");
        MHD_stop_daemon(d);
        return 1;
    }
    if (port_file != NULL && write_port_file(port_file, port) != 0) {
        fprintf(stderr, "bare_server: cannot write %s: %s\n", port_file, strerror(errno));
        MHD_stop_daemon(d);
        return 1;
    }
    fprintf(stderr, "bare_server: listening on port %u (%ld threads, poll)\n", port, ncpu);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    fprintf(stderr, "bare_server: signal %d, stopping\n", sig);

    MHD_stop_daemon(d);
    MHD_destroy_response(g_response);
    return 0;
}
