/*
 * vitalog — cli: helpers shared by verify, export and key.
 *
 * A bounded line reader (constant memory over any export), key loading,
 * durable small-file writes and the data-directory lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "vitalog/cli.h"

/* ------------------------------------------------------------------------
 * Line reader
 * ---------------------------------------------------------------------- */

#define LINES_INITIAL (64u * 1024)

int vl_cli_lines_open(vl_cli_lines_t *r, const char *path, size_t max_line)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->max_line = max_line;
    if (!strcmp(path, "-")) {
        r->fd = STDIN_FILENO;
    } else {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0)
            return -1;
        r->owns_fd = 1;
    }
    r->cap = max_line + 2 < LINES_INITIAL ? max_line + 2 : LINES_INITIAL;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        int e = errno;
        vl_cli_lines_close(r);
        errno = e;
        return -1;
    }
    return 0;
}

void vl_cli_lines_close(vl_cli_lines_t *r)
{
    if (r->owns_fd && r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->buf = NULL;
    r->fd = -1;
    r->owns_fd = 0;
}

static int lines_too_long(vl_cli_lines_t *r)
{
    snprintf(r->error, sizeof r->error, "line %llu: longer than %zu bytes",
             (unsigned long long)r->lineno + 1, r->max_line);
    return -1;
}

int vl_cli_lines_next(vl_cli_lines_t *r, char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
        ssize_t got;
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->start));
            if (n > r->max_line)
                return lines_too_long(r);
            *nl = '\0';
            *line = r->buf + r->start;
            *len = n;
            r->start = r->scan = (size_t)(nl - r->buf) + 1;
            r->lineno++;
            return 1;
        }
        r->scan = r->end;
        if (r->end - r->start > r->max_line)
            return lines_too_long(r);
        if (r->eof) {
            if (r->start == r->end)
                return 0;
            /* last line without a newline; the buffer always keeps one
             * spare byte for this NUL */
            r->buf[r->end] = '\0';
            *line = r->buf + r->start;
            *len = r->end - r->start;
            r->start = r->scan = r->end;
            r->lineno++;
            return 1;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->scan -= r->start;
            r->start = 0;
        }
        if (r->end + 1 >= r->cap) {
            size_t ncap = r->cap * 2;
            char *nbuf;
            if (r->cap >= r->max_line + 2)
                return lines_too_long(r);
            if (ncap > r->max_line + 2)
                ncap = r->max_line + 2;
            nbuf = realloc(r->buf, ncap);
            if (!nbuf) {
                snprintf(r->error, sizeof r->error, "out of memory");
                return -1;
            }
            r->buf = nbuf;
            r->cap = ncap;
        }
        got = read(r->fd, r->buf + r->end, r->cap - 1 - r->end);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            snprintf(r->error, sizeof r->error, "read error after line %llu: %s",
                     (unsigned long long)r->lineno, strerror(errno));
            return -1;
        }
        if (got == 0)
            r->eof = 1;
        r->end += (size_t)got;
    }
}

/* ------------------------------------------------------------------------
 * Files
 * ---------------------------------------------------------------------- */

/* The whole file (at most `max` bytes) into a malloc'd buffer with a NUL
 * after its *len bytes. NULL with errno (EFBIG: longer than max). */
static char *read_all(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    size_t n = 0;
    if (fd < 0)
        return NULL;
    buf = malloc(max + 2);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    for (;;) {
        ssize_t got = read(fd, buf + n, max + 1 - n);
        if (got < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > max) {
            free(buf);
            close(fd);
            errno = EFBIG;
            return NULL;
        }
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *vl_cli_read_small(const char *path, size_t max)
{
    size_t n = 0;
    char *buf = read_all(path, max, &n);
    if (!buf)
        return NULL;
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    return buf;
}

int vl_cli_fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd, rc;
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        if ((size_t)(slash - path) >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes `data` durably to a temp file beside `path`, then moves it into
 * place: rename() (replacing) or link() (never replacing: EEXIST). */
static int write_durably(const char *path, const char *data, size_t len, unsigned mode, int replace)
{
    char tmp[PATH_MAX];
    int fd, e;
    size_t off = 0;
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return -1;
    if (fchmod(fd, (mode_t)mode) < 0)
        goto fail;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (replace ? rename(tmp, path) < 0 : link(tmp, path) < 0)
        goto fail;
    if (!replace)
        unlink(tmp);
    return vl_cli_fsync_dir_of(path);
fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
    return -1;
}

int vl_cli_write_atomic(const char *path, const char *data, size_t len, unsigned mode)
{
    return write_durably(path, data, len, mode, 1);
}

int vl_cli_write_new(const char *path, const char *data, size_t len, unsigned mode)
{
    return write_durably(path, data, len, mode, 0);
}

int vl_cli_check_data(const char *cmd, const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    if (stat(dir, &st) < 0) {
        fprintf(stderr, "%s: no data directory %s: %s\n", cmd, dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s is not a directory\n", cmd, dir);
        return -1;
    }
    snprintf(path, sizeof path, "%s/vitalog.db", dir);
    if (stat(path, &st) < 0) {
        fprintf(stderr, "%s: no database in %s (%s: %s)\n", cmd, dir, path, strerror(errno));
        return -1;
    }
    return 0;
}

int vl_cli_lock_data(const char *cmd, const char *dir)
{
    char path[PATH_MAX];
    int fd;
    snprintf(path, sizeof path, "%s/vitalog.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            fprintf(stderr,
                    "%s: %s is in use by a running vitalog server (%s is locked); stop the "
                    "server first\n",
                    cmd, dir, path);
        else
            fprintf(stderr, "%s: cannot lock %s: %s\n", cmd, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------- */

static int add_vkey(const char *cmd, const char *text, const char *source, vl_ledger_key_t *keys,
                    size_t *n)
{
    vl_error_t err = VL_ERROR_INIT;
    if (*n >= VL_CLI_MAX_KEYS) {
        fprintf(stderr, "%s: at most %d keys\n", cmd, VL_CLI_MAX_KEYS);
        return -1;
    }
    if (vl_ledger_key_parse_vkey(text, &keys[*n], &err) < 0) {
        if (!strncmp(text, "PRIVATE+KEY+", 12))
            fprintf(stderr,
                    "%s: %s holds a private (signer) key; give the verifier key "
                    "(ledger.vkey, GET /ledger/key) instead\n",
                    cmd, source);
        else
            fprintf(stderr, "%s: %s: not a verifier key: %s\n", cmd, source,
                    vl_error_message(&err));
        vl_error_clear(&err);
        sodium_memzero(&keys[*n], sizeof keys[*n]);
        return -1;
    }
    (*n)++;
    return 0;
}

int vl_cli_load_vkeys(const char *cmd, const char *arg, vl_ledger_key_t *keys, size_t *n)
{
    vl_ledger_key_t probe;
    vl_error_t err = VL_ERROR_INIT;
    char *text, *p, *save = NULL;
    int rc = 0, any = 0;

    /* a key string first: a verifier key cannot be mistaken for a path
     * that exists, and a path is very unlikely to parse as a key */
    if (vl_ledger_key_parse_vkey(arg, &probe, &err) == 0) {
        vl_error_clear(&err);
        return add_vkey(cmd, arg, "--key", keys, n);
    }
    vl_error_clear(&err);
    text = vl_cli_read_small(arg, 64 * 1024);
    if (!text) {
        if (errno == ENOENT && strchr(arg, '+'))
            return add_vkey(cmd, arg, "--key", keys, n); /* prints the parse error */
        fprintf(stderr, "%s: --key %s: neither a verifier key nor a readable file (%s)\n", cmd, arg,
                strerror(errno));
        return -1;
    }
    for (p = strtok_r(text, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            continue;
        if (add_vkey(cmd, p, arg, keys, n) < 0) {
            rc = -1;
            break;
        }
        any = 1;
    }
    if (rc == 0 && !any) {
        fprintf(stderr, "%s: %s holds no verifier key\n", cmd, arg);
        rc = -1;
    }
    free(text);
    return rc;
}

int vl_cli_first_vkey(const char *cmd, const char *dir, char *out, size_t n)
{
    char path[PATH_MAX];
    vl_ledger_key_t k;
    vl_error_t err = VL_ERROR_INIT;
    char *text, *line, *end;
    int rc = -1;
    snprintf(path, sizeof path, "%s/ledger.vkey.history", dir);
    text = vl_cli_read_small(path, 1024 * 1024);
    if (!text && errno == ENOENT) {
        snprintf(path, sizeof path, "%s/ledger.vkey", dir);
        text = vl_cli_read_small(path, 64 * 1024);
    }
    if (!text) {
        fprintf(stderr, "%s: cannot read the log's first verifier key from %s: %s\n", cmd, path,
                strerror(errno));
        return -1;
    }
    /* the first non-blank line, without surrounding blanks */
    line = text + strspn(text, " \t\r\n");
    end = line + strcspn(line, "\r\n");
    while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    if (!*line) {
        fprintf(stderr, "%s: %s holds no verifier key\n", cmd, path);
    } else if (vl_ledger_key_parse_vkey(line, &k, &err) < 0) {
        fprintf(stderr, "%s: %s: not a verifier key: %s\n", cmd, path, vl_error_message(&err));
    } else if ((size_t)snprintf(out, n, "%s", line) >= n) {
        fprintf(stderr, "%s: %s: verifier key too long\n", cmd, path);
    } else {
        rc = 0;
    }
    vl_error_clear(&err);
    free(text);
    return rc;
}

int vl_cli_load_keys_list(const char *cmd, const char *path, vl_ledger_keys_t *list)
{
    vl_error_t err = VL_ERROR_INIT;
    size_t len = 0;
    char *text = read_all(path, VL_LEDGER_KEYS_MAX_LEN, &len);
    int rc = 0;
    memset(list, 0, sizeof *list);
    if (!text) {
        if (errno == EFBIG)
            fprintf(stderr, "%s: --keys %s: longer than %u bytes\n", cmd, path,
                    VL_LEDGER_KEYS_MAX_LEN);
        else
            fprintf(stderr, "%s: --keys %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    if (vl_ledger_keys_parse(text, len, list, &err) < 0) { /* a NUL inside fails */
        fprintf(stderr, "%s: --keys %s: not a ledger keys list (GET /ledger/keys): %s\n", cmd, path,
                vl_error_message(&err));
        rc = -1;
    }
    vl_error_clear(&err);
    free(text);
    return rc;
}

int vl_cli_load_skey(const char *cmd, const char *path, vl_ledger_key_t *key)
{
    vl_error_t err = VL_ERROR_INIT;
    char *text = vl_cli_read_small(path, 4096);
    int rc = 0;
    if (!text) {
        fprintf(stderr, "%s: cannot read the signer key %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    if (vl_ledger_key_parse_skey(text, key, &err) < 0) {
        fprintf(stderr, "%s: %s: not a signer key: %s\n", cmd, path, vl_error_message(&err));
        vl_error_clear(&err);
        sodium_memzero(key, sizeof *key);
        rc = -1;
    }
    sodium_memzero(text, strlen(text));
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------
 * Checkpoint notes
 * ---------------------------------------------------------------------- */

int vl_cli_note_checkpoint(const char *note, size_t len, char *origin, size_t origin_len,
                           uint64_t *size, unsigned char root[VL_HASH_LEN])
{
    vl_error_t err = VL_ERROR_INIT;
    const char *end = NULL;
    char *body;
    size_t i, blen;
    int rc;
    /* the note text ends at the first blank line: "...\n\n<signatures>" */
    for (i = 0; i + 1 < len; i++) {
        if (note[i] == '\n' && note[i + 1] == '\n') {
            end = note + i + 1;
            break;
        }
    }
    if (!end)
        return -1;
    blen = (size_t)(end - note);
    body = malloc(blen + 1);
    if (!body)
        return -1;
    memcpy(body, note, blen);
    body[blen] = '\0';
    rc = vl_ledger_checkpoint_parse(body, origin, origin_len, size, root, &err);
    vl_error_clear(&err);
    free(body);
    return rc < 0 ? -1 : 0;
}
