/*
 * The pipelined export reader (cli.h): hashing on a second thread.
 *
 * A ring of VL_CLI_PIPE_BLOCKS blocks. The producer fills the block at
 * `fill` (lines copied into the block's arena, leaf hashes computed) and
 * publishes it; the consumer reads the block at `read` and releases it when
 * it asks for the line after its last. Block states move
 *
 *     FREE --producer fills--> READY --consumer drains--> FREE
 *
 * under one mutex; each side waits on its own condition variable. An error
 * or the end of input travels in the block where it happened, so the
 * consumer sees every line before it, in order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vitalog/cli.h"
#include "vitalog/ledger.h"

enum { BLOCK_FREE, BLOCK_READY };

typedef struct block {
    int state;
    char *arena;
    size_t arena_len, arena_cap;
    size_t n; /* lines in the block */
    size_t off[VL_CLI_PIPE_LINES], len[VL_CLI_PIPE_LINES];
    unsigned char hashed[VL_CLI_PIPE_LINES];
    unsigned char leaf[VL_CLI_PIPE_LINES][VL_HASH_LEN];
    uint64_t first_lineno; /* number of its first line */
    int end;               /* 0 more follows; 1 end of input; -1 error after its lines */
    char error[160];
} block_t;

struct vl_cli_pipe {
    vl_cli_lines_t in;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t can_fill, can_read;
    block_t blocks[VL_CLI_PIPE_BLOCKS];
    int fill, read;
    size_t pos; /* next line of blocks[read] */
    int stopping;
    uint64_t lineno;
    char error[160];
};

static int append_line(block_t *b, const char *line, size_t len)
{
    if (vl_grow(&b->arena, &b->arena_cap, b->arena_len + len + 1, 1) < 0)
        return -1;
    memcpy(b->arena + b->arena_len, line, len);
    b->arena[b->arena_len + len] = '\0';
    b->off[b->n] = b->arena_len;
    b->len[b->n] = len;
    b->hashed[b->n] = len >= 9 && !memcmp(line, "{\"index\":", 9);
    if (b->hashed[b->n])
        vl_ledger_leaf_hash(line, len, b->leaf[b->n]);
    b->arena_len += len + 1;
    b->n++;
    return 0;
}

static void *producer(void *arg)
{
    vl_cli_pipe_t *p = arg;
    for (;;) {
        block_t *b;
        pthread_mutex_lock(&p->mu);
        while (p->blocks[p->fill].state != BLOCK_FREE && !p->stopping)
            pthread_cond_wait(&p->can_fill, &p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        b = &p->blocks[p->fill];
        pthread_mutex_unlock(&p->mu);

        b->n = b->arena_len = 0;
        b->end = 0;
        b->first_lineno = p->in.lineno + 1;
        while (b->n < VL_CLI_PIPE_LINES) {
            char *line;
            size_t len;
            int rc = vl_cli_lines_next(&p->in, &line, &len);
            if (rc == 0) {
                b->end = 1;
                break;
            }
            if (rc < 0 || append_line(b, line, len) < 0) {
                b->end = -1;
                snprintf(b->error, sizeof b->error, "%s", rc < 0 ? p->in.error : "out of memory");
                break;
            }
        }
        pthread_mutex_lock(&p->mu);
        b->state = BLOCK_READY;
        p->fill = (p->fill + 1) % VL_CLI_PIPE_BLOCKS;
        pthread_cond_signal(&p->can_read);
        pthread_mutex_unlock(&p->mu);
        if (b->end)
            return NULL;
    }
}

vl_cli_pipe_t *vl_cli_pipe_open(const char *path, size_t max_line)
{
    vl_cli_pipe_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (vl_cli_lines_open(&p->in, path, max_line) < 0) {
        int e = errno;
        free(p);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->can_fill, NULL);
    pthread_cond_init(&p->can_read, NULL);
    if (pthread_create(&p->thread, NULL, producer, p) != 0) {
        vl_cli_lines_close(&p->in);
        free(p);
        errno = EAGAIN;
        return NULL;
    }
    return p;
}

int vl_cli_pipe_next(vl_cli_pipe_t *p, char **line, size_t *len, const unsigned char **leaf)
{
    for (;;) {
        block_t *b = &p->blocks[p->read];
        pthread_mutex_lock(&p->mu);
        while (b->state != BLOCK_READY)
            pthread_cond_wait(&p->can_read, &p->mu);
        pthread_mutex_unlock(&p->mu);
        if (p->pos < b->n) {
            size_t i = p->pos++;
            *line = b->arena + b->off[i];
            *len = b->len[i];
            *leaf = b->hashed[i] ? b->leaf[i] : NULL;
            p->lineno = b->first_lineno + i;
            return 1;
        }
        if (b->end) { /* stays READY: later calls give the same answer */
            if (b->end < 0)
                snprintf(p->error, sizeof p->error, "%s", b->error);
            return b->end < 0 ? -1 : 0;
        }
        pthread_mutex_lock(&p->mu); /* drained: hand it back */
        b->state = BLOCK_FREE;
        p->read = (p->read + 1) % VL_CLI_PIPE_BLOCKS;
        p->pos = 0;
        pthread_cond_signal(&p->can_fill);
        pthread_mutex_unlock(&p->mu);
    }
}

uint64_t vl_cli_pipe_lineno(const vl_cli_pipe_t *p)
{
    return p->lineno;
}

const char *vl_cli_pipe_error(const vl_cli_pipe_t *p)
{
    return p->error;
}

void vl_cli_pipe_close(vl_cli_pipe_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_signal(&p->can_fill);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    vl_cli_lines_close(&p->in);
    for (int i = 0; i < VL_CLI_PIPE_BLOCKS; i++)
        free(p->blocks[i].arena);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->can_fill);
    pthread_cond_destroy(&p->can_read);
    free(p);
}
