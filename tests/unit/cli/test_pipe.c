/*
 * The pipelined export reader (src/cli/pipe.c): every line comes back in
 * order, byte for byte, across block boundaries; entry lines carry their
 * leaf hash and other lines none; a last line without a newline counts; an
 * over-long line is an error after every line before it; empty input ends
 * at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "vitalog/cli.h"
#include "vitalog/ledger.h"

static char *temp_file(const char *content, size_t len)
{
    char *path = strdup("/tmp/vl-pipe-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void line_text(size_t i, char *out, size_t n)
{
    if (i % 7 == 3)
        snprintf(out, n, "{\"checkpoint\":\"x%zu\"}", i);
    else
        snprintf(out, n, "{\"index\":%zu,\"pad\":\"%0*d\"}", i, (int)(i % 50), 0);
}

static void test_lines_and_hashes_across_blocks(void **state)
{
    const size_t n = 3 * VL_CLI_PIPE_LINES + 17; /* several blocks, a partial last one */
    size_t cap = n * 96, len = 0;
    char *content = malloc(cap), *path, *line, want[96];
    const unsigned char *leaf;
    size_t got_len, i = 0;
    vl_cli_pipe_t *p;
    (void)state;
    for (size_t k = 0; k < n; k++) {
        line_text(k, want, sizeof want);
        len += (size_t)snprintf(content + len, cap - len, "%s%s", want, k + 1 < n ? "\n" : "");
    }
    path = temp_file(content, len); /* no newline after the last line */
    p = vl_cli_pipe_open(path, 1024);
    assert_non_null(p);
    while (vl_cli_pipe_next(p, &line, &got_len, &leaf) == 1) {
        unsigned char h[VL_HASH_LEN];
        line_text(i, want, sizeof want);
        assert_int_equal(got_len, strlen(want));
        assert_string_equal(line, want);
        assert_int_equal(vl_cli_pipe_lineno(p), i + 1);
        if (i % 7 == 3) {
            assert_null(leaf);
        } else {
            assert_non_null(leaf);
            vl_ledger_leaf_hash(want, strlen(want), h);
            assert_memory_equal(leaf, h, VL_HASH_LEN);
        }
        i++;
    }
    assert_int_equal(i, n);
    assert_int_equal(vl_cli_pipe_next(p, &line, &got_len, &leaf), 0); /* stays at the end */
    vl_cli_pipe_close(p);
    unlink(path);
    free(path);
    free(content);
}

static void test_long_line_is_an_error_after_the_lines_before(void **state)
{
    char content[4096], *path, *line;
    size_t len, n = 0;
    const unsigned char *leaf;
    vl_cli_pipe_t *p;
    int rc;
    (void)state;
    len = (size_t)snprintf(content, sizeof content, "{\"index\":0}\n{\"index\":1}\n");
    memset(content + len, 'x', 2000);
    len += 2000;
    content[len++] = '\n';
    path = temp_file(content, len);
    p = vl_cli_pipe_open(path, 1000);
    assert_non_null(p);
    while ((rc = vl_cli_pipe_next(p, &line, &len, &leaf)) == 1)
        n++;
    assert_int_equal(n, 2);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(vl_cli_pipe_error(p), "longer than"));
    vl_cli_pipe_close(p);
    unlink(path);
    free(path);
}

static void test_empty_and_missing(void **state)
{
    char *path = temp_file("", 0), *line;
    size_t len;
    const unsigned char *leaf;
    vl_cli_pipe_t *p;
    (void)state;
    p = vl_cli_pipe_open(path, 100);
    assert_non_null(p);
    assert_int_equal(vl_cli_pipe_next(p, &line, &len, &leaf), 0);
    vl_cli_pipe_close(p);
    unlink(path);
    free(path);
    assert_null(vl_cli_pipe_open("/nonexistent/vitalog-export", 100));
}

static void test_close_before_the_end(void **state)
{
    /* the producer may be blocked on a full ring: close must still return */
    const size_t n = 5 * VL_CLI_PIPE_LINES;
    size_t cap = n * 16, len = 0;
    char *content = malloc(cap), *path, *line;
    const unsigned char *leaf;
    vl_cli_pipe_t *p;
    (void)state;
    for (size_t k = 0; k < n; k++)
        len += (size_t)snprintf(content + len, cap - len, "{\"index\":%zu}\n", k);
    path = temp_file(content, len);
    p = vl_cli_pipe_open(path, 100);
    assert_non_null(p);
    assert_int_equal(vl_cli_pipe_next(p, &line, &len, &leaf), 1);
    usleep(50 * 1000);
    vl_cli_pipe_close(p);
    unlink(path);
    free(path);
    free(content);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_hashes_across_blocks),
        cmocka_unit_test(test_long_line_is_an_error_after_the_lines_before),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_close_before_the_end),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
